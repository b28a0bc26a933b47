import CDCEntropy
import CDCImageCodecs
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor

/// Class scores of `model` on `x` (evaluation mode, nothing recorded).
func scores(_ model: Module, _ x: Tensor) -> Tensor {
    model.eval()
    return Autograd.noGrad { model(x) }
}

/// The raw-data baseline: the device sends each sample itself — 8-bit pixels of an image, or
/// 16-bit PCM of an audio clip (little-endian) — and the server runs the whole classifier.
public final class RawSystem: CoInferenceSystem {
    public let split = "input", channel = "none", oneOffBytes = 0
    /// `raw`, or the name of a control row (e.g. `raw-finetuned`).
    public let system: String
    public var config: String { audio ? "16-bit PCM" : "8-bit" }
    public let classifier: Module
    /// One sample's shape, `[C, H, W]` or `[1, L]`.
    public let sampleShape: [Int]
    public let audio: Bool

    public init(classifier: Module, sampleShape: [Int], audio: Bool = false, name: String = "raw") {
        self.classifier = classifier; self.sampleShape = sampleShape; self.audio = audio; system = name
    }

    var perSample: Int { sampleShape.reduce(1, *) }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        let n = batch.shape[0], per = perSample, p = batch.plain.pointer
        return (0..<n).map { i in
            if audio {
                var out = [UInt8](repeating: 0, count: 2 * per)
                for j in 0..<per {
                    let v = UInt16(bitPattern: Int16(max(-32768, min(32767, (p[i * per + j] * 32768).rounded()))))
                    out[2 * j] = UInt8(v & 0xff); out[2 * j + 1] = UInt8(v >> 8)
                }
                return out
            }
            return (0..<per).map { UInt8(max(0, min(255, (p[i * per + $0] * 255).rounded()))) }
        }
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        let per = perSample, bytes = audio ? 2 * per : per
        var x = [Float](repeating: 0, count: payloads.count * per)
        for (i, b) in payloads.enumerated() {
            guard b.count == bytes else { throw SplitError("a raw sample is \(bytes) bytes, not \(b.count)") }
            for j in 0..<per {
                x[i * per + j] = audio ? Float(Int16(bitPattern: UInt16(b[2 * j]) | UInt16(b[2 * j + 1]) << 8)) / 32768
                                       : Float(b[j]) / 255
            }
        }
        return scores(classifier, Tensor(x, shape: [payloads.count] + sampleShape))
    }
}

/// JPEG or WebP at one quality, the server decoding each image and running the whole
/// classifier (trained on raw images: the codec is applied at test time only). Per image the
/// device sends only what differs between images: JPEG's scan (SOS to EOI), its tables and
/// frame header (identical for every image of one size and quality) being a one-off transfer;
/// WebP's VP8 bitstream, the 20 bytes of RIFF and chunk headers being rebuilt by the server
/// from the payload's length.
public final class ImageCodecSystem: CoInferenceSystem {
    public let kind: ImageCodecKind
    public let quality: Int
    public let split = "input", channel = "none"
    public var system: String { kind.rawValue }
    public var config: String { "q=\(quality)" }
    public let classifier: Module
    public let channels: Int, height: Int, width: Int
    /// JPEG: the shared part every file starts with (sent once).
    let jpegShared: [UInt8]
    public var oneOffBytes: Int { jpegShared.count }

    public init(kind: ImageCodecKind, quality: Int, classifier: Module, channels: Int, height: Int, width: Int) throws {
        self.kind = kind; self.quality = quality; self.classifier = classifier
        self.channels = channels; self.height = height; self.width = width
        if kind == .jpeg {
            let blank = RawImage(width: width, height: height, channels: channels,
                                 pixels: [UInt8](repeating: 128, count: width * height * channels))
            jpegShared = try JPEG.split(JPEG.encode(blank, quality: quality)).shared
        } else {
            jpegShared = []
        }
    }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        let n = batch.shape[0], hw = height * width, per = channels * hw, p = batch.plain.pointer
        return try (0..<n).map { i in
            // Planar CHW in [0, 1] → interleaved HWC bytes.
            var pixels = [UInt8](repeating: 0, count: per)
            for c in 0..<channels {
                for j in 0..<hw { pixels[j * channels + c] = UInt8(max(0, min(255, (p[i * per + c * hw + j] * 255).rounded()))) }
            }
            let image = RawImage(width: width, height: height, channels: channels, pixels: pixels)
            switch kind {
            case .jpeg:
                let (shared, scan) = try JPEG.split(JPEG.encode(image, quality: quality))
                guard shared == jpegShared else { throw SplitError("libjpeg wrote different tables for one image of the same size and quality") }
                return scan
            case .webp:
                let file = try WebP.encode(image, quality: Float(quality))
                let (header, payload) = try WebP.split(file)
                guard header == 20 else { throw SplitError("a WebP file with \(header) header bytes (expected RIFF + one VP8 chunk)") }
                return Array(file[20..<(20 + payload)])
            }
        }
    }

    /// The WebP file of a VP8 bitstream: RIFF header, `VP8 ` chunk, pad byte.
    static func webpFile(vp8 data: [UInt8]) -> [UInt8] {
        let pad = data.count & 1
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xff) } }
        return Array("RIFF".utf8) + le32(4 + 8 + data.count + pad) + Array("WEBPVP8 ".utf8) + le32(data.count) + data
            + [UInt8](repeating: 0, count: pad)
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        let hw = height * width, per = channels * hw
        var x = [Float](repeating: 0, count: payloads.count * per)
        for (i, b) in payloads.enumerated() {
            let image: RawImage
            do {
                image = kind == .jpeg ? try JPEG.decode(JPEG.join(shared: jpegShared, perImage: b), channels: channels)
                                      : try WebP.decode(Self.webpFile(vp8: b), channels: channels)
            } catch { throw SplitError("not a \(kind.rawValue) image of this system: \(error)") }
            guard image.width == width, image.height == height else {
                throw SplitError("a \(image.width)×\(image.height) image for a \(width)×\(height) classifier")
            }
            for c in 0..<channels {
                for j in 0..<hw { x[i * per + c * hw + j] = Float(image.pixels[j * channels + c]) / 255 }
            }
        }
        return scores(classifier, Tensor(x, shape: [payloads.count, channels, height, width]))
    }
}

/// CDC's deployment case: the edge's encoder and quantizer turn each test sample into symbols,
/// rANS-coded per sample under a histogram counted on the training set's codes; the cloud
/// decodes them, restores the sample with the uploaded decoder and classifies it with the
/// classifier it trained on restored data. One-off: the decoder file and the histogram.
public final class CDCSystem: CoInferenceSystem {
    public let system = "cdc", split = "input", channel = "none"
    public var config: String { "m=\(encoder.quantizer.mask)" + (label.isEmpty ? "" : " \(label)") }
    public let encoder: CDCAutoencoder
    /// The cloud's copy of the decoder (rebuilt from the decoder file, float16 weights).
    public let decoder: CDCAutoencoder
    public let classifier: Module
    public let coder: StaticSymbolCoder
    public let latentShape: [Int]
    public let sampleShape: [Int]
    public let decoderBytes: Int
    /// Extra words for ``config`` (e.g. `alpha=8`).
    public let label: String
    public var oneOffBytes: Int { decoderBytes + coder.oneOffBytes }
    var low: Float { sampleShape.count == 2 ? -1 : 0 }

    /// `encoder`: the edge's trained autoencoder; `decoderFile`: its decoder file as uploaded;
    /// `calibration`: samples (e.g. the training set) whose codes the histogram is counted on.
    public init(encoder: CDCAutoencoder, decoderFile: [UInt8], classifier: Module, calibration: Tensor, label: String = "") throws {
        self.encoder = encoder; self.classifier = classifier; self.label = label
        decoder = try EdgeCodec.loadDecoder(decoderFile)
        decoderBytes = decoderFile.count
        sampleShape = Array(calibration.shape.dropFirst())
        encoder.eval()
        let (s, shape) = encoder.encode(calibration)
        latentShape = Array(shape.dropFirst())
        let L = encoder.quantizer.levels
        coder = try StaticSymbolCoder(calibration: s.map { UInt16(Int($0) + L - 1) }, channels: latentShape[0],
                                      symbolsPerChannel: latentShape.dropFirst().reduce(1, *), alphabetSize: 2 * L)
    }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        encoder.eval()
        let L = encoder.quantizer.levels
        return try coder.encodeSamples(encoder.encode(batch).symbols.map { UInt16(Int($0) + L - 1) }, count: batch.shape[0])
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        let L = encoder.quantizer.levels
        var symbols: [Int8] = []
        symbols.reserveCapacity(payloads.count * coder.symbolsPerSample)
        for b in payloads { symbols += try coder.decode(b[...]).map { Int8(Int($0) - L + 1) } }
        decoder.eval()
        let restored = decoder.decode(symbols, shape: [payloads.count] + latentShape).clamp(low, 1)
        guard Array(restored.shape.dropFirst()) == sampleShape else {
            throw SplitError("the decoder restores \(restored.shape.dropFirst()) for samples of \(sampleShape)")
        }
        return scores(classifier, restored)
    }
}
