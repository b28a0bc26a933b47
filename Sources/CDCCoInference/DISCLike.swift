import CDCEntropy
import CDCNN
import CDCTensor
import CZlib

/// How the DISC-like codec codes its quantized symbols.
public enum FeatureCoding: String, Codable, Sendable, CaseIterable {
    /// rANS under a static per-channel histogram counted on calibration samples.
    case rans
    /// zlib (deflate, level 9) of one byte per symbol: the general-purpose comparison.
    case zlib
}

/// DISC-like training-free compression of a split point's features (swift-cdc's own
/// construction: DISC's internals are not public, only its abstract; this follows its
/// verifiable relatives — asymmetric integer quantization, sparsification and rANS).
///
/// Per sample: values at most `tau` × the sample's largest magnitude become 0; the rest are
/// quantized asymmetrically to `bits` bits between the sample's minimum and maximum, which are
/// sent as float16 (4 bytes); the symbols are coded with ``FeatureCoding``. The server
/// dequantizes and runs the classifier on from the split. Nothing is trained: the rANS
/// histogram is counted on calibration samples and sent once.
public final class DISCLikeSystem: CoInferenceSystem {
    public let classifier: SplitClassifier
    public let split: String
    public let tau: Float
    public let bits: Int
    public let coding: FeatureCoding
    public let channel = "none"
    /// One sample's feature shape at the split.
    public let featureShape: [Int]
    let coder: StaticSymbolCoder?
    public var system: String { coding == .rans ? "disc-like" : "disc-like-zlib" }
    public var config: String { "tau=\(tau) b=\(bits)" }
    public var oneOffBytes: Int { coder?.oneOffBytes ?? 0 }
    public var featureValues: Int? { featureShape.reduce(1, *) }
    /// Bytes of the per-sample header (minimum and maximum as float16).
    public static let headerBytes = 4

    /// A codec for `split` whose histogram is counted on `calibration`: features at the split
    /// (`[n] + featureShape`, from ``SplitClassifier/device(_:to:)``).
    public init(classifier: SplitClassifier, split: String, tau: Float, bits: Int, coding: FeatureCoding = .rans,
                calibration: Tensor) throws {
        guard (1...8).contains(bits) else { throw SplitError("bits must be 1…8, not \(bits)") }
        guard tau >= 0, tau < 1 else { throw SplitError("the threshold tau is a fraction of the maximum in [0, 1), not \(tau)") }
        _ = try classifier.index(of: split)
        guard split != "input" else { throw SplitError("DISC-like compression codes features: pick a split after the input") }
        self.classifier = classifier; self.split = split; self.tau = tau; self.bits = bits; self.coding = coding
        featureShape = Array(calibration.shape.dropFirst())
        let channels = featureShape[0], perChannel = featureShape.dropFirst().reduce(1, *)
        if coding == .rans {
            let symbols = Self.quantize(calibration, tau: tau, bits: bits).symbols
            coder = try StaticSymbolCoder(calibration: symbols, channels: channels, symbolsPerChannel: perChannel,
                                          alphabetSize: 1 << bits)
        } else {
            coder = nil
        }
    }

    var perSample: Int { featureShape.reduce(1, *) }
    var levels: Float { Float((1 << bits) - 1) }

    /// Thresholds and quantizes every sample of `h`: its symbols (concatenated) and each
    /// sample's float16 minimum and maximum.
    static func quantize(_ h: Tensor, tau: Float, bits: Int) -> (symbols: [UInt16], ranges: [(Float16, Float16)]) {
        let n = h.shape[0], per = h.count / max(n, 1), p = h.plain.pointer
        let levels = Float((1 << bits) - 1)
        var symbols = [UInt16](repeating: 0, count: h.count)
        var ranges: [(Float16, Float16)] = []
        ranges.reserveCapacity(n)
        for i in 0..<n {
            let v = UnsafeBufferPointer(start: p + i * per, count: per)
            var peak: Float = 0
            for x in v { peak = max(peak, abs(x)) }
            let cut = tau * peak
            var lo = Float.infinity, hi = -Float.infinity
            for x in v {
                let y = abs(x) <= cut ? 0 : x
                lo = min(lo, y); hi = max(hi, y)
            }
            // The range as the server will see it (float16), widened outwards so it still covers every value.
            var lo16 = Float16(lo), hi16 = Float16(hi)
            if Float(lo16) > lo { lo16 = lo16.nextDown }
            if Float(hi16) < hi { hi16 = hi16.nextUp }
            ranges.append((lo16, hi16))
            let l = Float(lo16), span = Float(hi16) - l
            let scale = span > 0 ? levels / span : 0
            for j in 0..<per {
                let y = abs(v[j]) <= cut ? 0 : v[j]
                symbols[i * per + j] = UInt16(max(0, min(levels, ((y - l) * scale).rounded())))
            }
        }
        return (symbols, ranges)
    }

    /// The device's side after the device part of the classifier: features `[n] + featureShape`
    /// to one payload per sample.
    public func encodeFeatures(_ h: Tensor) throws -> [[UInt8]] {
        guard Array(h.shape.dropFirst()) == featureShape else {
            throw SplitError("features of shape \(Array(h.shape.dropFirst())) for a codec of \(featureShape)")
        }
        let (symbols, ranges) = Self.quantize(h, tau: tau, bits: bits)
        let per = perSample
        return try symbols.withUnsafeBufferPointer { all in
            try ranges.enumerated().map { i, r in
                var out = [UInt8]()
                out.reserveCapacity(Self.headerBytes + per / 4)
                for v in [r.0.bitPattern, r.1.bitPattern] { out.append(UInt8(v & 0xff)); out.append(UInt8(v >> 8)) }
                let s = UnsafeBufferPointer(rebasing: all[(i * per)..<((i + 1) * per)])
                switch coding {
                case .rans: try coder!.encode(s, appendingTo: &out)
                case .zlib: out += try Zlib.compress(s.map { UInt8($0) })
                }
                return out
            }
        }
    }

    /// The server's side before its part of the classifier: payloads to dequantized features.
    public func decodeFeatures(_ payloads: [[UInt8]]) throws -> Tensor {
        let per = perSample
        var x = [Float](repeating: 0, count: payloads.count * per)
        for (i, b) in payloads.enumerated() {
            guard b.count > Self.headerBytes else { throw SplitError("a DISC-like payload is at least \(Self.headerBytes + 1) bytes, not \(b.count)") }
            let lo = Float(Float16(bitPattern: UInt16(b[0]) | UInt16(b[1]) << 8))
            let hi = Float(Float16(bitPattern: UInt16(b[2]) | UInt16(b[3]) << 8))
            guard lo.isFinite, hi.isFinite, hi >= lo else { throw SplitError("a DISC-like payload with a corrupt range [\(lo), \(hi)]") }
            let body = b[Self.headerBytes...]
            let symbols: [UInt16]
            switch coding {
            case .rans: symbols = try coder!.decode(body)
            case .zlib:
                let bytes = try Zlib.decompress(Array(body), expected: per)
                guard bytes.allSatisfy({ Float($0) <= levels }) else { throw SplitError("a DISC-like symbol above \(Int(levels))") }
                symbols = bytes.map(UInt16.init)
            }
            let step = (hi - lo) / levels
            for j in 0..<per { x[i * per + j] = lo + Float(symbols[j]) * step }
        }
        return Tensor(x, shape: [payloads.count] + featureShape)
    }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        classifier.model.eval()
        let h = try Autograd.noGrad { try classifier.device(batch, to: split) }
        return try encodeFeatures(h)
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        let h = try decodeFeatures(payloads)
        classifier.model.eval()
        return try Autograd.noGrad { try classifier.server(h, from: split) }
    }
}

/// zlib's deflate, for the general-purpose comparison rows.
enum Zlib {
    static func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let status = compress2(&out, &size, bytes, uLong(bytes.count), 9)
        guard status == Z_OK else { throw SplitError("zlib compress failed (\(status))") }
        return Array(out.prefix(Int(size)))
    }

    /// Inflates exactly `expected` bytes; anything else is a corrupt payload.
    static func decompress(_ bytes: [UInt8], expected: Int) throws -> [UInt8] {
        var size = uLongf(expected)
        var out = [UInt8](repeating: 0, count: expected + 1)
        let status = uncompress(&out, &size, bytes, uLong(bytes.count))
        guard status == Z_OK, Int(size) == expected else {
            throw SplitError("a zlib payload that does not inflate to \(expected) bytes (status \(status))")
        }
        return Array(out.prefix(expected))
    }
}
