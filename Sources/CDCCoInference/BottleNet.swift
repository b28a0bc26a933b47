import CDCData
import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation

// BottleNet++ (Shao & Zhang, ICC-W 2020, arXiv 1910.14315) for split inference: a one-layer
// CNN encoder shrinks the feature at the split to a sigmoid code, the code crosses a channel
// (none, AWGN or a binary erasure channel), a one-layer decoder restores the feature's shape
// and the server runs the rest of the classifier. See `../shared/spec/co-inference.md` §1.
//
// What differs from the anchor (`shaojiawei07/BottleNetPlusPlus` at de80800), on purpose:
// * each decoder is paired with its own encoder's geometry (the anchor's d807458 pairs them
//   wrongly, so maps come back 2× or ½× size), and odd or non-square maps come back at their
//   exact size (the output padding is computed per axis);
// * the noise plane is `[B, 1, H, W]` (the anchor's `(B, 1, H, H)` assumes square maps);
// * 8-bit codes are round(255·x) (the anchor's round(256·x) wraps 256 to 0 in uint8);
// * test noise is fixed: seeded from a fixed seed and the code's bytes, so a payload always
//   meets the same noise whatever the batch (the anchor draws fresh noise at test time);
// * Adam at 1e-3 for phase 2 and 1e-4 for phase 3, for 2 + 1 epochs by default (the anchor:
//   1e-4 for 70 epochs, batch 32, which 2 CPU cores cannot afford); no augmentation.

// MARK: - Geometry

/// The encoder's convolution at a split and the decoder that undoes it (spec §1.5).
///
/// * ``k2s2``: encoder Conv2d(k2 s2), decoder ConvTranspose2d(k2 s2) — S0, S1, S2
///   (e.g. 256×14×14 → C′×7×7 → 256×14×14).
/// * ``k3s2p1``: encoder Conv2d(k3 s2 p1), decoder ConvTranspose2d(k3 s2 p1) — S3
///   (512×7×7 → C′×4×4 → 512×7×7).
/// * ``k3s1p1``: encoder Conv2d(k3 s1 p1), decoder Conv2d(k3 s1 p1) — no spatial change
///   (the anchor's `spatial=0`).
///
/// The transposed convolution's output padding is computed per axis so that the decoder's
/// output has exactly the feature's height and width, odd, even or non-square.
public enum BottleNetGeometry: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case k2s2, k3s2p1, k3s1p1

    /// The spec's choice for a resnext split: ``k2s2`` for S0–S2, ``k3s2p1`` for S3. `G` (a
    /// vector after global average pooling) and `input` have no feature map and throw.
    public static func `default`(for split: String) throws -> BottleNetGeometry {
        switch split {
        case "S0", "S1", "S2": return .k2s2
        case "S3": return .k3s2p1
        case "G":
            throw SplitError("split G is after global average pooling: a vector with no spatial map, which BottleNet++'s convolutional encoder cannot take (pick S0…S3)")
        case "input":
            throw SplitError("split 'input' sends the sample itself: BottleNet++ needs a feature map (pick S0…S3)")
        default:
            throw SplitError("no default BottleNet++ geometry for split '\(split)' (resnext's S0…S3 have one)")
        }
    }

    public var description: String { rawValue }
    /// The encoder's kernel size.
    public var kernel: Int { self == .k2s2 ? 2 : 3 }
    /// The encoder's (and the transposed decoder's) stride.
    public var stride: Int { self == .k3s1p1 ? 1 : 2 }
    /// The encoder's (and the decoder's) padding.
    public var padding: Int { self == .k2s2 ? 0 : 1 }
    /// Whether the decoder is a transposed convolution (a plain k3 s1 p1 convolution otherwise).
    public var transposedDecoder: Bool { self != .k3s1p1 }

    /// The code's shape `[C′, h, w]` for features `[C, H, W]`; throws for anything else.
    public func codeShape(feature: [Int], codeChannels: Int) throws -> [Int] {
        guard feature.count == 3, feature.allSatisfy({ $0 > 0 }) else {
            throw SplitError("BottleNet++ takes 2-D feature maps [C, H, W], not \(feature)")
        }
        guard codeChannels > 0 else { throw SplitError("C' must be positive, not \(codeChannels)") }
        return [codeChannels, try codeSize(feature[1]), try codeSize(feature[2])]
    }

    /// The code's size along an axis of the feature of size `n`; throws if the axis is too small.
    public func codeSize(_ n: Int) throws -> Int {
        guard n + 2 * padding >= kernel else {
            throw SplitError("a feature axis of size \(n) is too small for BottleNet++'s \(rawValue) encoder")
        }
        return (n + 2 * padding - kernel) / stride + 1
    }

    /// The transposed decoder's output padding that brings the code back to size `n` (0 or 1).
    public func outputPadding(_ n: Int) throws -> Int {
        guard transposedDecoder else { return 0 }
        return n - ((try codeSize(n) - 1) * stride - 2 * padding + kernel)
    }
}

// MARK: - Encoder and decoder

/// BottleNet++'s device-side encoder: a constant plane holding the channel's noise level
/// (σ or p) is concatenated to the feature (C + 1 channels), then Conv2d(C+1 → C′) of the
/// split's ``BottleNetGeometry``, BatchNorm2d and a sigmoid: a code in (0, 1).
///
/// Differs from the anchor: the plane is `[B, 1, H, W]` (any map, not only square ones).
public final class BottleNetEncoder: Module, @unchecked Sendable {
    public let conv: Conv2d
    public let bn: BatchNorm2d
    /// One sample's feature shape `[C, H, W]`.
    public let featureShape: [Int]
    /// One sample's code shape `[C′, h, w]`.
    public let codeShape: [Int]
    public let geometry: BottleNetGeometry

    /// An encoder for features of shape `featureShape` (`[C, H, W]`) to `codeChannels` (C′) channels.
    public init(featureShape: [Int], codeChannels: Int, geometry: BottleNetGeometry) throws {
        self.featureShape = featureShape
        self.geometry = geometry
        codeShape = try geometry.codeShape(feature: featureShape, codeChannels: codeChannels)
        conv = Conv2d(featureShape[0] + 1, codeChannels, kernelSize: geometry.kernel, stride: geometry.stride,
                      padding: geometry.padding)
        bn = BatchNorm2d(codeChannels)
    }

    /// The code of features `x` (`[B] + featureShape`) with the noise plane at `noiseLevel`.
    public func forward(_ x: Tensor, noiseLevel: Float) -> Tensor {
        precondition(Array(x.shape.dropFirst()) == featureShape,
                     "BottleNetEncoder: features \(x.shape) for an encoder of \(featureShape)")
        let plane = Tensor.full([x.shape[0], 1, x.shape[2], x.shape[3]], noiseLevel)
        return bn(conv(Tensor.concat([x, plane], axis: 1))).sigmoid()
    }

    /// The code with the noise plane at 0 (a noiseless channel).
    public override func forward(_ x: Tensor) -> Tensor { forward(x, noiseLevel: 0) }
}

/// BottleNet++'s server-side decoder: ConvTranspose2d(C′ → C) of the encoder's geometry (or
/// Conv2d(C′ → C, k3 s1 p1) for ``BottleNetGeometry/k3s1p1``), BatchNorm2d and ReLU, giving
/// back exactly the feature's shape.
///
/// Differs from the anchor: paired with its own encoder's geometry (the anchor's commit d807458
/// pairs the wrong decoder with each encoder), with the output padding computed per axis.
public final class BottleNetDecoder: Module, @unchecked Sendable {
    /// The transposed convolution (``BottleNetGeometry/transposedDecoder``), else nil.
    public let deconv: ConvTranspose2d?
    /// The plain convolution (``BottleNetGeometry/k3s1p1``), else nil.
    public let conv: Conv2d?
    public let bn: BatchNorm2d
    /// One sample's feature shape `[C, H, W]` (what the decoder restores).
    public let featureShape: [Int]
    /// One sample's code shape `[C′, h, w]` (what the decoder reads).
    public let codeShape: [Int]
    public let geometry: BottleNetGeometry
    /// The transposed convolution's output padding along height and width.
    public let outputPadding: (Int, Int)

    /// A decoder from `codeChannels` (C′) channels back to features of shape `featureShape`.
    public init(featureShape: [Int], codeChannels: Int, geometry: BottleNetGeometry) throws {
        self.featureShape = featureShape
        self.geometry = geometry
        codeShape = try geometry.codeShape(feature: featureShape, codeChannels: codeChannels)
        outputPadding = (try geometry.outputPadding(featureShape[1]), try geometry.outputPadding(featureShape[2]))
        let c = featureShape[0]
        if geometry.transposedDecoder {
            // A module with PyTorch's (square) output padding where the two axes agree; otherwise
            // its weights are used with the per-axis padding (forward below).
            deconv = ConvTranspose2d(codeChannels, c, kernelSize: geometry.kernel, stride: geometry.stride,
                                     padding: geometry.padding,
                                     outputPadding: outputPadding.0 == outputPadding.1 ? outputPadding.0 : 0)
            conv = nil
        } else {
            deconv = nil
            conv = Conv2d(codeChannels, c, kernelSize: 3, stride: 1, padding: 1)
        }
        bn = BatchNorm2d(c)
    }

    /// Features `[B] + featureShape` from codes `[B] + codeShape`.
    public override func forward(_ x: Tensor) -> Tensor {
        bn.forward(preNorm(x), fuseReLU: true)
    }

    /// The (transposed) convolution's output, before the batch norm.
    func preNorm(_ x: Tensor) -> Tensor {
        precondition(Array(x.shape.dropFirst()) == codeShape, "BottleNetDecoder: codes \(x.shape) for a decoder of \(codeShape)")
        let y: Tensor
        if let conv {
            y = conv(x)
        } else if let deconv, outputPadding.0 == outputPadding.1 {
            y = deconv(x)
        } else {
            let d = deconv!
            y = Tensor.convTranspose2d(x, weight: d.weight, bias: d.bias, stride: d.stride, padding: d.padding,
                                       outputPadding: outputPadding)
        }
        return y
    }
}

// MARK: - Channels

/// The channel between BottleNet++'s encoder and decoder, with its noise level.
///
/// As a *training* channel the level is the maximum: each training forward draws σ ~ U[0, σmax]
/// or p ~ U[0, pmax] (``sampled(using:)``). As a *test* channel the level is the one applied.
/// ``description`` is `none`, `awgn sigma=0.1` or `bec p=0.01` (``init(parsing:)`` reads it back).
public enum BottleNetChannel: Sendable, Hashable, CustomStringConvertible {
    /// No noise (the anchor's `w`).
    case noiseless
    /// Additive white Gaussian noise of standard deviation `sigma` on the analog code (`a`).
    case awgn(sigma: Float)
    /// A binary erasure channel on the code's 8 bits: each bit erased with probability `p` (`e`).
    case bec(p: Float)

    public var description: String {
        switch self {
        case .noiseless: return "none"
        case .awgn(let s): return "awgn sigma=\(s)"
        case .bec(let p): return "bec p=\(p)"
        }
    }

    /// Reads a ``description`` back; nil for anything else.
    public init?(parsing text: String) {
        if text == "none" { self = .noiseless; return }
        if text.hasPrefix("awgn sigma="), let s = Float(text.dropFirst("awgn sigma=".count)), s >= 0, s.isFinite {
            self = .awgn(sigma: s); return
        }
        if text.hasPrefix("bec p="), let p = Float(text.dropFirst("bec p=".count)), (0...1).contains(p) {
            self = .bec(p: p); return
        }
        return nil
    }

    /// The value of the encoder's noise plane: σ, p, or 0 without noise.
    public var noiseLevel: Float {
        switch self {
        case .noiseless: return 0
        case .awgn(let s): return s
        case .bec(let p): return p
        }
    }

    /// The same kind of channel at a level drawn uniformly in [0, this level] (the anchor's
    /// per-forward draw during training).
    public func sampled(using generator: inout SeededGenerator) -> BottleNetChannel {
        switch self {
        case .noiseless: return .noiseless
        case .awgn(let s): return .awgn(sigma: s * generator.nextUniform())
        case .bec(let p): return .bec(p: p * generator.nextUniform())
        }
    }

    /// The training-time channel layer at this level (not trainable):
    /// * AWGN: y = x + N(0, σ²) (the gradient passes unchanged: the noise is an added constant);
    /// * BEC: x → round(255·x) as 8 bits, each bit erased with probability p, an erased bit
    ///   replaced by half its weight: y = (kept + (255 − keptMask)/2)/255, with a straight-through
    ///   gradient (dy/dx = 1);
    /// * none: y = x.
    ///
    /// Differs from the anchor: the scale is 255 (round(256·x) wraps 256 to 0).
    public func apply(_ code: Tensor, generator: inout SeededGenerator) -> Tensor {
        switch self {
        case .noiseless:
            return code
        case .awgn(let sigma):
            guard sigma > 0 else { return code }
            return code + Tensor.normal(code.shape, std: sigma, generator: &generator)
        case .bec(let p):
            let n = code.count, src = code.plain.pointer
            let out = Tensor.empty(code.shape)
            let dst = out.mutablePointer
            for i in 0..<n { dst[i] = BECChannel.erase(BottleNet.byte(src[i]), p: p, generator: &generator) }
            return out.withCustomGradient("bec", inputs: [code]) { g in [g] }
        }
    }

    /// The test-time channel on one sample's 8-bit code: the received values in code units
    /// (AWGN is added to round(255·x)/255; BEC erases bits of the bytes), noise seeded by
    /// `seed` (see ``noiseSeed(for:seed:)``).
    public func transmit(_ bytes: [UInt8], seed: UInt64) -> [Float] {
        switch self {
        case .noiseless: return bytes.map { Float($0) / 255 }
        case .awgn(let sigma): return AWGN.transmit(bytes.map { Float($0) / 255 }, sigma: sigma, seed: seed)
        case .bec(let p): return BECChannel.transmit(bytes, p: p, seed: seed)
        }
    }

    /// The seed of the test noise a payload meets: a fixed function (FNV-1a, then a SplitMix64
    /// finalizer) of `seed` and the payload's bytes, the same on every machine and in every run,
    /// so the same payload always meets the same noise, whatever batch it travels in.
    public static func noiseSeed(for bytes: [UInt8], seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        h = (h ^ UInt64(bytes.count)) &* 0x0000_0100_0000_01b3
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }
}

/// The binary erasure channel on 8-bit codes, at test time.
public enum BECChannel {
    /// The received values in code units (`[0, 1]`) of `bytes`: each of the 8 bits of each byte
    /// is erased with probability `p`, an erased bit replaced by half its weight,
    /// (kept + (255 − keptMask)/2)/255. Seeded: the same bytes, `p` and `seed` give the same values.
    /// At p = 0 this is byte/255; at p = 1 every value is 127.5/255.
    public static func transmit(_ bytes: [UInt8], p: Float, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        return bytes.map { erase($0, p: p, generator: &g) }
    }

    /// One byte through the channel.
    @inline(__always)
    static func erase(_ byte: UInt8, p: Float, generator g: inout SeededGenerator) -> Float {
        var kept: UInt8 = 0xff
        if p > 0 {
            for bit in 0..<8 where g.nextUniform() < p { kept &= ~(UInt8(1) << UInt8(bit)) }
        }
        return (Float(byte & kept) + Float(255 - kept) / 2) / 255
    }
}

/// Additive white Gaussian noise, at test time.
public enum AWGN {
    /// `values` + N(0, σ²), seeded: the same values, σ and `seed` give the same result.
    /// σ = 0 returns the values unchanged.
    public static func transmit(_ values: [Float], sigma: Float, seed: UInt64) -> [Float] {
        guard sigma > 0 else { return values }
        var g = SeededGenerator(seed: seed)
        return values.map { $0 + sigma * g.nextNormal() }
    }
}

// MARK: - The model

/// BottleNet++ at one split: the classifier's device part, the ``BottleNetEncoder``, the
/// ``BottleNetDecoder`` and the classifier's server part, as one module whose state is
/// `encoder.*`, `decoder.*` and `backbone.*` (the whole classifier).
///
/// **BottleNet++ owns its classifier**: phase 3 of training fine-tunes the backbone, so pass a
/// freshly loaded copy of the classifier, not one other systems use.
///
/// Differs from the anchor: see the notes on ``BottleNetEncoder``, ``BottleNetDecoder``,
/// ``BottleNetChannel`` and ``BottleNetTrainer`` (scale 255, matching decoders, non-square
/// maps, fixed test noise, learning rates).
public final class BottleNet: Module, @unchecked Sendable {
    public let encoder: BottleNetEncoder
    public let decoder: BottleNetDecoder
    /// The whole classifier (``SplitClassifier/model``), saved with the encoder and decoder.
    public let backbone: Module
    /// The classifier cut at ``split``.
    public let classifier: SplitClassifier
    public let split: String
    public let geometry: BottleNetGeometry
    /// The channel trained for, at its maximum level (σmax or pmax).
    public let trainChannel: BottleNetChannel
    /// One input sample's shape (`[1, 28, 28]` for Fashion-MNIST).
    public let sampleShape: [Int]

    /// One sample's feature shape at the split, `[C, H, W]`.
    public var featureShape: [Int] { encoder.featureShape }
    /// One sample's code shape, `[C′, h, w]`.
    public var codeShape: [Int] { encoder.codeShape }
    /// C′.
    public var codeChannels: Int { encoder.codeShape[0] }
    /// Code values per sample (C′·h·w): bytes of an 8-bit payload.
    public var codeCount: Int { codeShape.reduce(1, *) }

    /// BottleNet++ at `split` of `classifier` (owned from now on; see the type's note) with
    /// `codeChannels` (C′) code channels, `geometry` (default ``BottleNetGeometry/default(for:)``),
    /// for inputs of `sampleShape`, to be trained for `trainChannel`.
    public init(classifier: SplitClassifier, split: String, codeChannels: Int, geometry: BottleNetGeometry? = nil,
                trainChannel: BottleNetChannel = .noiseless, sampleShape: [Int] = [1, 28, 28]) throws {
        _ = try classifier.index(of: split)
        guard split != "input" else {
            throw SplitError("split 'input' sends the sample itself: BottleNet++ needs a feature map after the device part")
        }
        let geometry = try geometry ?? BottleNetGeometry.default(for: split)
        let shape = try classifier.featureShape(at: split, sample: sampleShape)
        guard shape.count == 3 else {
            throw SplitError("BottleNet++ here takes 2-D feature maps; \(classifier.family)'s \(split) gives \(shape)")
        }
        encoder = try BottleNetEncoder(featureShape: shape, codeChannels: codeChannels, geometry: geometry)
        decoder = try BottleNetDecoder(featureShape: shape, codeChannels: codeChannels, geometry: geometry)
        backbone = classifier.model
        self.classifier = classifier
        self.split = split
        self.geometry = geometry
        self.trainChannel = trainChannel
        self.sampleShape = sampleShape
    }

    /// The device's side: classifier part and encoder, codes `[B] + codeShape` in (0, 1).
    public func code(_ x: Tensor, noiseLevel: Float) throws -> Tensor {
        encoder.forward(try classifier.device(x, to: split), noiseLevel: noiseLevel)
    }

    /// The server's side: decoder and classifier part, codes (as received) to class scores.
    public func scores(fromCode code: Tensor) throws -> Tensor {
        try classifier.server(decoder(code), from: split)
    }

    /// The whole path without channel noise (noise plane 0, no quantization): class scores.
    public override func forward(_ x: Tensor) -> Tensor {
        // The split was checked at init, so the classifier's parts do not throw.
        try! scores(fromCode: code(x, noiseLevel: 0))
    }

    /// 8-bit codes of each sample of `code` (`[B] + codeShape`): round(255·x), clamped to 0…255.
    /// Differs from the anchor: 255, not 256 (which wraps to 0 in uint8).
    public static func quantize8(_ code: Tensor) -> [[UInt8]] {
        let n = code.shape.first ?? 0, per = code.count / max(n, 1), p = code.plain.pointer
        return (0..<n).map { i in (0..<per).map { byte(p[i * per + $0]) } }
    }

    /// round(255·x) clamped to 0…255 (NaN → 0).
    @inline(__always)
    static func byte(_ x: Float) -> UInt8 {
        let v = (x * 255).rounded()
        return v >= 255 ? 255 : (v > 0 ? UInt8(v) : 0)
    }

    // MARK: Checkpoints

    /// Saves the encoder, the decoder and the (fine-tuned) classifier as a safetensors file,
    /// with metadata `system`, `family`, `split`, `code_channels`, `geometry`, `train_channel`,
    /// `feature_shape` and `sample_shape` (shapes as `256x14x14`).
    public func save(to url: URL) throws {
        try Checkpoint.save(self, to: url, metadata: [
            "system": "bottlenet++", "family": classifier.family, "split": split,
            "code_channels": String(codeChannels), "geometry": geometry.rawValue,
            "train_channel": trainChannel.description,
            "feature_shape": featureShape.map(String.init).joined(separator: "x"),
            "sample_shape": sampleShape.map(String.init).joined(separator: "x"),
        ])
    }

    /// BottleNet++ as ``save(to:)`` wrote it, around `classifier` (a fresh instance of the same
    /// architecture, whose weights are replaced by the file's and which the result owns). The
    /// metadata must name a BottleNet++ of `classifier`'s family whose feature shape at the split
    /// matches; every tensor must fit (strict load).
    public static func load(from url: URL, classifier: SplitClassifier) throws -> BottleNet {
        let file = try SafetensorsFile.read(from: url)
        let m = file.metadata
        func field(_ key: String) throws -> String {
            guard let v = m[key] else { throw SplitError("\(url.lastPathComponent): no '\(key)' in the metadata of a BottleNet++ checkpoint") }
            return v
        }
        func shape(_ key: String) throws -> [Int] {
            let parts = try field(key).split(separator: "x").map { Int($0) }
            guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw SplitError("\(url.lastPathComponent): '\(key)' is not a shape like 1x28x28: \(m[key] ?? "")")
            }
            return parts.map { $0! }
        }
        guard try field("system") == "bottlenet++" else {
            throw SplitError("\(url.lastPathComponent) is a '\(m["system"] ?? "")' checkpoint, not bottlenet++")
        }
        guard try field("family") == classifier.family else {
            throw SplitError("\(url.lastPathComponent) holds a \(m["family"] ?? "") classifier, not \(classifier.family)")
        }
        guard let c = Int(try field("code_channels")), c > 0 else {
            throw SplitError("\(url.lastPathComponent): code_channels is not a positive integer: \(m["code_channels"] ?? "")")
        }
        guard let geometry = BottleNetGeometry(rawValue: try field("geometry")) else {
            throw SplitError("\(url.lastPathComponent): unknown geometry '\(m["geometry"] ?? "")'")
        }
        guard let channel = BottleNetChannel(parsing: try field("train_channel")) else {
            throw SplitError("\(url.lastPathComponent): unknown training channel '\(m["train_channel"] ?? "")'")
        }
        let net = try BottleNet(classifier: classifier, split: try field("split"), codeChannels: c, geometry: geometry,
                                trainChannel: channel, sampleShape: try shape("sample_shape"))
        let saved = try shape("feature_shape")
        guard saved == net.featureShape else {
            throw SplitError("\(url.lastPathComponent) was trained on features \(saved) at \(net.split); this classifier gives \(net.featureShape)")
        }
        try Checkpoint.load(file.tensors, into: net)
        return net
    }
}

// MARK: - Training

/// BottleNet++'s training phases (phase 1, the backbone's own training, is the project's
/// classifier checkpoint).
public enum BottleNetPhase: Int, Sendable, CustomStringConvertible {
    /// Phase 2: the backbone frozen (evaluation mode, so its batch-norm statistics stay; no
    /// parameter of it updated); only the encoder and decoder learn, the server part still
    /// passing the gradient back to them.
    case frozenBackbone = 2
    /// Phase 3: everything fine-tuned, the backbone in training mode.
    case fineTune = 3

    public var description: String { "phase \(rawValue)" }
}

/// Settings of ``BottleNetTrainer``.
///
/// Differs from the anchor (Adam 1e-4 constant, batch 32, 70 epochs, crop and flip): Adam at
/// 1e-3 (phase 2) and 1e-4 (phase 3), batch 128, 2 + 1 epochs by default, no augmentation.
public struct BottleNetTrainingConfig: Sendable {
    public var phase2Epochs: Int
    public var phase3Epochs: Int
    public var phase2LearningRate: Float
    public var phase3LearningRate: Float
    public var batchSize: Int
    /// Seeds the batch order and the channel's training noise.
    public var seed: UInt64

    public init(phase2Epochs: Int = 2, phase3Epochs: Int = 1, phase2LearningRate: Float = 1e-3,
                phase3LearningRate: Float = 1e-4, batchSize: Int = 128, seed: UInt64 = 0) {
        self.phase2Epochs = phase2Epochs; self.phase3Epochs = phase3Epochs
        self.phase2LearningRate = phase2LearningRate; self.phase3LearningRate = phase3LearningRate
        self.batchSize = batchSize; self.seed = seed
    }
}

/// Trains a ``BottleNet`` on cross-entropy of the server part's output: phase 2 (backbone
/// frozen) then phase 3 (everything fine-tuned), each with its own Adam.
///
/// Every training forward draws the channel's level uniformly in [0, max] (σ ~ U[0, σmax] or
/// p ~ U[0, pmax]; nothing for a noiseless channel), fills the encoder's noise plane with it and
/// passes the code through ``BottleNetChannel/apply(_:generator:)`` at that level.
///
/// Differs from the anchor: learning rates and epochs (``BottleNetTrainingConfig``); the
/// device part runs without recording gradients in phase 2 (it is frozen).
public final class BottleNetTrainer {
    public let model: BottleNet
    public let config: BottleNetTrainingConfig
    /// Adam over the encoder's and decoder's parameters (phase 2).
    public let phase2Optimizer: Adam
    /// Adam over every parameter, backbone included (phase 3).
    public let phase3Optimizer: Adam
    var generator: SeededGenerator

    /// Progress: epoch (from 1), batch (from 1), batches in the epoch, a status line.
    public typealias Progress = (_ epoch: Int, _ batch: Int, _ batches: Int, _ status: String) -> Void

    public init(model: BottleNet, config: BottleNetTrainingConfig = BottleNetTrainingConfig()) {
        self.model = model
        self.config = config
        phase2Optimizer = Adam(model.encoder.parameters() + model.decoder.parameters(), learningRate: config.phase2LearningRate)
        phase3Optimizer = Adam(model.parameters(), learningRate: config.phase3LearningRate)
        generator = SeededGenerator(seed: config.seed ^ 0xB077_1E7E)
    }

    /// One training step on a batch `x` (`[B] + sampleShape`): returns the loss and the
    /// number of correct predictions.
    @discardableResult
    public func step(_ x: Tensor, labels: [Int], phase: BottleNetPhase) throws -> (loss: Float, correct: Int) {
        let net = model
        let channel = net.trainChannel.sampled(using: &generator)
        net.zeroGrad()
        let logits: Tensor
        switch phase {
        case .frozenBackbone:
            net.backbone.eval(); net.encoder.train(); net.decoder.train()
            // The backbone's parameters take no gradient; the server part still passes it on.
            let frozen = net.backbone.parameters().filter(\.requiresGrad)
            for p in frozen { p.requiresGrad = false }
            defer { for p in frozen { p.requiresGrad = true } }
            let h = try Autograd.noGrad { try net.classifier.device(x, to: net.split) }
            let z = channel.apply(net.encoder.forward(h, noiseLevel: channel.noiseLevel), generator: &generator)
            logits = try net.scores(fromCode: z)
            let loss = Tensor.crossEntropy(logits, labels: labels)
            loss.backward()
            phase2Optimizer.step()
            return (loss.item, zip(logits.argmaxLastAxis(), labels).filter { $0 == $1 }.count)
        case .fineTune:
            net.train()
            let z = channel.apply(try net.code(x, noiseLevel: channel.noiseLevel), generator: &generator)
            logits = try net.scores(fromCode: z)
            let loss = Tensor.crossEntropy(logits, labels: labels)
            loss.backward()
            phase3Optimizer.step()
            return (loss.item, zip(logits.argmaxLastAxis(), labels).filter { $0 == $1 }.count)
        }
    }

    /// Runs `epochs` epochs of `phase` over `data` (shuffled per epoch with the config's seed).
    public func train(_ phase: BottleNetPhase, on data: LabelledDataset, epochs: Int, progress: Progress? = nil) throws {
        for epoch in 0..<epochs {
            let shuffle = config.seed &+ UInt64(phase.rawValue) &* 7_919 &+ UInt64(epoch) &* 104_729
            let batches = data.batchIndices(size: config.batchSize, shuffle: shuffle, dropLast: data.count >= config.batchSize)
            var loss: Float = 0, correct = 0, seen = 0
            for (i, indices) in batches.enumerated() {
                let (x, y) = data.batch(indices)
                let r = try step(x, labels: y, phase: phase)
                loss += r.loss; correct += r.correct; seen += y.count
                progress?(epoch + 1, i + 1, batches.count,
                          "\(phase) " + String(format: "loss %.3f  acc %.1f%%", loss / Float(i + 1),
                                                  100 * Float(correct) / Float(max(seen, 1))))
            }
        }
        model.eval()
    }

    /// Phase 2 for ``BottleNetTrainingConfig/phase2Epochs``, then phase 3 for
    /// ``BottleNetTrainingConfig/phase3Epochs``.
    public func train(on data: LabelledDataset, progress: Progress? = nil) throws {
        try train(.frozenBackbone, on: data, epochs: config.phase2Epochs, progress: progress)
        try train(.fineTune, on: data, epochs: config.phase3Epochs, progress: progress)
        try recalibrateNorms(on: data)
    }

    /// Sets the running statistics of the encoder's and the decoder's batch norms to their
    /// averages over up to `batches` training batches (channel noise drawn as in training),
    /// the backbone in evaluation mode. Needed because the decoder's transposed convolution
    /// starts with outputs of variance ~1e-3 while a running variance starts at 1: with
    /// momentum 0.1 it takes a few hundred steps to get there, and a short training (the quick
    /// experiment) leaves it 100× too large, so that evaluation mode restores features 10× too
    /// small and classifies at chance (PyTorch would do the same; its remedy is this one).
    public func recalibrateNorms(on data: LabelledDataset, batches: Int = 20) throws {
        let net = model
        net.eval()
        let indices = Array(data.batchIndices(size: config.batchSize, shuffle: config.seed &+ 99, dropLast: false).prefix(batches))
        /// Per-channel mean and (biased) variance of `t` `[N, C, H, W]`.
        func moments(_ t: Tensor) -> ([Float], [Float]) {
            let c = t.shape[1], hw = t.shape[2] * t.shape[3], n = t.shape[0], p = t.plain.pointer
            var mean = [Float](repeating: 0, count: c), variance = [Float](repeating: 0, count: c)
            for ch in 0..<c {
                var s: Double = 0, s2: Double = 0
                for i in 0..<n { for j in 0..<hw { let v = Double(p[(i * c + ch) * hw + j]); s += v; s2 += v * v } }
                let m = s / Double(n * hw)
                mean[ch] = Float(m); variance[ch] = Float(max(s2 / Double(n * hw) - m * m, 0))
            }
            return (mean, variance)
        }
        /// Sets `bn`'s running statistics to the average moments of what `input(x)` gives.
        func calibrate(_ bn: BatchNorm2d, _ input: (Tensor) throws -> Tensor) throws {
            var sums: ([Float], [Float])? = nil
            for batch in indices {
                let (m, v) = moments(try Autograd.noGrad { try input(data.batch(batch).0) })
                sums = sums.map { (zip($0.0, m).map(+), zip($0.1, v).map(+)) } ?? (m, v)
            }
            guard let (m, v) = sums else { return }
            let k = Float(indices.count)
            bn.runningMean.tensor = Tensor(m.map { $0 / k }, shape: [m.count])
            bn.runningVar.tensor = Tensor(v.map { $0 / k }, shape: [v.count])
        }
        try calibrate(net.encoder.bn) { x in
            let h = try net.classifier.device(x, to: net.split)
            let level = net.trainChannel.sampled(using: &generator).noiseLevel
            return net.encoder.conv(Tensor.concat([h, Tensor.full([h.shape[0], 1, h.shape[2], h.shape[3]], level)], axis: 1))
        }
        try calibrate(net.decoder.bn) { x in
            let channel = net.trainChannel.sampled(using: &generator)
            let code = channel.apply(try net.code(x, noiseLevel: channel.noiseLevel), generator: &generator)
            return net.decoder.preNorm(code)
        }
        net.eval()
    }

    /// Builds and trains BottleNet++ at `split` of `classifier` (a trained classifier, freshly
    /// loaded for this model, which owns and fine-tunes it) with C′ = `codeChannels`, for
    /// `channel` at its maximum level, on `data`.
    public static func train(classifier: SplitClassifier, split: String, codeChannels: Int, channel: BottleNetChannel,
                             data: LabelledDataset, geometry: BottleNetGeometry? = nil,
                             config: BottleNetTrainingConfig = BottleNetTrainingConfig(),
                             progress: Progress? = nil) throws -> BottleNet {
        let net = try BottleNet(classifier: classifier, split: split, codeChannels: codeChannels, geometry: geometry,
                                trainChannel: channel, sampleShape: data.sampleShape)
        try BottleNetTrainer(model: net, config: config).train(on: data, progress: progress)
        return net
    }
}

// MARK: - The co-inference system

/// BottleNet++ in the co-inference harness.
///
/// * `bottlenet++`: the payload is one byte per code value, round(255·x): exactly C′·h·w bytes
///   per sample (config `C'=4 8-bit`).
/// * `bottlenet++-coded`: the same 8-bit codes rANS-coded per sample under a static per-channel
///   histogram measured on calibration codes (config `C'=4 rANS`); the serialized histogram is
///   ``oneOffBytes``.
///
/// ``encode(_:)`` runs the device part and the encoder (evaluation mode, noise plane at the test
/// channel's level). ``classify(_:)`` applies ``testChannel`` on the server side (standing for
/// the link) to the received 8-bit codes — for the coded variant, to the decoded codes, so the
/// coded row measures the rate of the same symbols and meets the same noise — dequantizes and
/// runs the decoder and the server part.
///
/// Differs from the anchor: test noise is fixed — seeded by ``noiseSeed`` and the code's bytes
/// (``BottleNetChannel/noiseSeed(for:seed:)``), so a payload meets the same noise in every run
/// and batch; 8-bit codes use 255 levels; the entropy-coded variant is new (spec §4.3).
public final class BottleNetSystem: CoInferenceSystem {
    public let model: BottleNet
    /// The channel applied at test time (may differ from ``BottleNet/trainChannel``); settable
    /// per evaluation.
    public var testChannel: BottleNetChannel
    /// The fixed seed of the test noise.
    public var noiseSeed: UInt64
    let coder: StaticSymbolCoder?

    public var system: String { coder == nil ? "bottlenet++" : "bottlenet++-coded" }
    public var split: String { model.split }
    public var config: String { "C'=\(model.codeChannels) \(coder == nil ? "8-bit" : "rANS")" }
    public var channel: String { testChannel.description }
    public var oneOffBytes: Int { coder?.oneOffBytes ?? 0 }
    public var featureValues: Int? { model.featureShape.reduce(1, *) }
    /// The training channel's description (for ``CoInferenceRow/trainChannel``).
    public var trainChannel: String { model.trainChannel.description }

    /// The 8-bit system (`bottlenet++`).
    public init(model: BottleNet, testChannel: BottleNetChannel = .noiseless, noiseSeed: UInt64 = 20_200_414) {
        self.model = model; self.testChannel = testChannel; self.noiseSeed = noiseSeed
        coder = nil
    }

    /// The rANS-coded system (`bottlenet++-coded`), its histogram measured on the codes of the
    /// `calibration` samples (`[n] + sampleShape`, e.g. training images) with the noise plane at
    /// `testChannel`'s level. Changing ``testChannel`` later keeps this histogram (codes it did
    /// not see are still coded, as escapes, at a few more bits).
    public init(model: BottleNet, calibration: Tensor, testChannel: BottleNetChannel = .noiseless,
                noiseSeed: UInt64 = 20_200_414) throws {
        self.model = model; self.testChannel = testChannel; self.noiseSeed = noiseSeed
        model.eval()
        let codes = try Autograd.noGrad { try model.code(calibration, noiseLevel: testChannel.noiseLevel) }
        let symbols = BottleNet.quantize8(codes).flatMap { $0.map(UInt16.init) }
        let c = model.codeShape
        coder = try StaticSymbolCoder(calibration: symbols, channels: c[0], symbolsPerChannel: c[1] * c[2], alphabetSize: 256)
    }

    public func encode(_ batch: Tensor) throws -> [[UInt8]] {
        model.eval()
        let level = testChannel.noiseLevel
        let codes = try Autograd.noGrad { try model.code(batch, noiseLevel: level) }
        let bytes = BottleNet.quantize8(codes)
        guard let coder else { return bytes }
        return try bytes.map { b in
            let symbols = b.map(UInt16.init)
            var out: [UInt8] = []
            try symbols.withUnsafeBufferPointer { try coder.encode($0, appendingTo: &out) }
            return out
        }
    }

    /// One payload's 8-bit codes (the payload itself, or its rANS decoding); throws a
    /// ``SplitError`` for a payload of the wrong size or a corrupt stream.
    public func codeBytes(_ payload: [UInt8]) throws -> [UInt8] {
        let per = model.codeCount
        guard let coder else {
            guard payload.count == per else {
                throw SplitError("a bottlenet++ payload at \(model.split) with C'=\(model.codeChannels) is \(per) bytes, not \(payload.count)")
            }
            return payload
        }
        return try coder.decode(payload[...]).map { UInt8($0) }
    }

    /// The code values the decoder receives for one payload: its 8-bit codes through
    /// ``testChannel`` with the payload's fixed noise, in code units.
    public func receivedCode(_ payload: [UInt8]) throws -> [Float] {
        let bytes = try codeBytes(payload)
        return testChannel.transmit(bytes, seed: BottleNetChannel.noiseSeed(for: bytes, seed: noiseSeed))
    }

    public func classify(_ payloads: [[UInt8]]) throws -> Tensor {
        guard !payloads.isEmpty else { throw SplitError("bottlenet++ was given no payloads to classify") }
        let per = model.codeCount
        var values = [Float](repeating: 0, count: payloads.count * per)
        for (i, p) in payloads.enumerated() {
            let r = try receivedCode(p)
            values.replaceSubrange((i * per)..<((i + 1) * per), with: r)
        }
        model.eval()
        let code = Tensor(values, shape: [payloads.count] + model.codeShape)
        return try Autograd.noGrad { try model.scores(fromCode: code) }
    }
}
