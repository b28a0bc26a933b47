import CDCTensor
import Foundation

/// Why a dataset file could not be read; the message names the file and the problem.
public struct DatasetError: Error, CustomStringConvertible {
    /// The message: the file (or directory) and what is wrong with it.
    public let description: String
    /// An error with the given message.
    public init(_ description: String) { self.description = description }
}

/// An in-memory labelled dataset of images (pixels scaled to [0, 1]) or of audio clips
/// (mono samples in [−1, 1], ``sampleRate`` set).
///
/// An audio clip is stored as a 1 × 1 × L "image" (channels 1, height 1, width L) so that
/// splits, subsets and batching are shared; ``sampleShape`` and ``batch(_:)`` give it the
/// 1-D models' shape `[1, L]`.
///
/// Loaders: ``idx(images:labels:)`` and ``fashionMNIST(train:directory:)`` (IDX files),
/// ``cifar10(files:)``, ``cifar100(files:labels:)`` and their directory forms (CIFAR binary
/// batches), ``imageFolder(root:channels:)`` (`root/<class>/*.png|jpg|jpeg`).
public struct LabelledDataset: Sendable {
    /// Pixels, `count × channels × height × width`, row-major (planar CHW per image).
    public var pixels: [Float]
    /// The class index of each image, in `0..<classes`.
    public var labels: [Int]
    /// Image shape: channels (1 gray, 3 RGB), rows, columns.
    public var channels: Int, height: Int, width: Int
    /// Number of classes.
    public var classes: Int
    /// Name of each class (index = label) where the format has them (image folders, CIFAR
    /// with its label-name files); empty otherwise.
    public var classNames: [String]
    /// Samples per second when the dataset holds audio clips (each `1 × 1 × length`); nil for images.
    public var sampleRate: Int?
    /// The codec whose quantized latents these samples are (`vae-cls`: `[K, h, w]` latents a
    /// classifier reads without restoring the image); nil for images and audio.
    public var latentCodec: String?
    /// Number of samples (images or clips).
    public var count: Int { labels.count }
    /// Floats per sample, `channels × height × width` (the clip length for audio).
    public var sampleSize: Int { channels * height * width }
    /// True when the samples are audio clips.
    public var isAudio: Bool { sampleRate != nil }
    /// The shape of one sample as the models read it: `[channels, height, width]` for images,
    /// `[1, length]` for audio.
    public var sampleShape: [Int] { isAudio ? [channels, width] : [channels, height, width] }
    /// Bits of one value in the raw form the uplink is compared with: 8 per pixel channel
    /// (8-bit images), 16 per audio sample (16-bit PCM).
    public var rawBitsPerValue: Int { isAudio ? 16 : 8 }
    /// Bytes of the raw data plus one label byte per sample: what sending the dataset
    /// uncompressed costs.
    public var rawBytes: Int { count * (sampleSize * rawBitsPerValue / 8 + 1) }
    /// Rate positions per sample: pixels (height × width) of an image, samples of an audio clip.
    /// Rates are given in bits per position: bits per pixel, or bits per audio sample.
    public var positionsPerSample: Int { height * width }
    /// What one rate position is called: "pixel" or "audio sample".
    public var positionName: String { isAudio ? "audio sample" : "pixel" }
    /// A short description of the sample geometry: `1×28×28` or `8000 samples at 8000 Hz`.
    public var geometry: String {
        if let sampleRate { return "\(width) samples at \(sampleRate) Hz" }
        return "\(channels)×\(height)×\(width)"
    }

    /// A dataset from pixels in [0, 1] laid out `count × channels × height × width` and one label per image.
    public init(pixels: [Float], labels: [Int], channels: Int, height: Int, width: Int, classes: Int,
                classNames: [String] = []) {
        precondition(channels > 0 && height > 0 && width > 0, "image shape must be positive")
        precondition(pixels.count == labels.count * channels * height * width,
                     "\(pixels.count) pixels do not make \(labels.count) images of \(channels)×\(height)×\(width)")
        precondition(classNames.isEmpty || classNames.count == classes, "classNames must name every class")
        self.pixels = pixels; self.labels = labels
        self.channels = channels; self.height = height; self.width = width
        self.classes = classes; self.classNames = classNames
    }

    /// A dataset of mono audio clips: `samples` laid out `count × length`, values in [−1, 1],
    /// at `sampleRate` samples per second.
    public init(audio samples: [Float], labels: [Int], length: Int, sampleRate: Int, classes: Int,
                classNames: [String] = []) {
        precondition(sampleRate > 0, "the sample rate must be positive")
        self.init(pixels: samples, labels: labels, channels: 1, height: 1, width: length, classes: classes,
                  classNames: classNames)
        self.sampleRate = sampleRate
    }

    /// A dataset of the same kind (shape, classes, names, sample rate) holding `pixels` and `labels`.
    func sameKind(pixels: [Float], labels: [Int]) -> LabelledDataset {
        var d = LabelledDataset(pixels: pixels, labels: labels, channels: channels, height: height, width: width,
                                classes: classes, classNames: classNames)
        d.sampleRate = sampleRate
        d.latentCodec = latentCodec
        return d
    }

    /// The first `n` samples.
    public func prefix(_ n: Int) -> LabelledDataset {
        let k = min(n, count), per = sampleSize
        return sameKind(pixels: Array(pixels[0..<(k * per)]), labels: Array(labels[0..<k]))
    }

    /// The samples at `indices`, in that order (same shape, classes and class names).
    public func subset(_ indices: some Collection<Int>) -> LabelledDataset {
        let per = sampleSize
        var out = [Float](repeating: 0, count: indices.count * per)
        var ys: [Int] = []
        ys.reserveCapacity(indices.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (j, s) in indices.enumerated() {
                    precondition(s >= 0 && s < count, "index \(s) out of range 0..<\(count)")
                    (dst.baseAddress! + j * per).update(from: src.baseAddress! + s * per, count: per)
                    ys.append(labels[s])
                }
            }
        }
        return sameKind(pixels: out, labels: ys)
    }

    // MARK: Batches

    /// The order of the samples in an epoch, cut into batches: a seeded permutation (or
    /// `0..<count` when `seed` is nil); the last partial batch is dropped when `dropLast`.
    public func batchIndices(size: Int, shuffle seed: UInt64?, dropLast: Bool = false) -> [[Int]] {
        precondition(size > 0, "batch size must be positive")
        var order = Array(0..<count)
        if let seed { var g = SeededGenerator(seed: seed); order.shuffle(using: &g) }
        var out: [[Int]] = []
        var i = 0
        while i < count {
            let n = min(size, count - i)
            if dropLast && n < size { break }
            out.append(Array(order[i..<(i + n)]))
            i += n
        }
        return out
    }

    /// One batch of the samples at `indices`: a `[n] + sampleShape` tensor (`[n, channels, height,
    /// width]` for images, `[n, 1, length]` for audio) and the labels.
    public func batch(_ indices: some Collection<Int>) -> (Tensor, [Int]) {
        let per = sampleSize
        let t = Tensor.empty([indices.count] + sampleShape)
        let p = t.mutablePointer
        var ys: [Int] = []
        ys.reserveCapacity(indices.count)
        pixels.withUnsafeBufferPointer { src in
            for (j, s) in indices.enumerated() {
                (p + j * per).update(from: src.baseAddress! + s * per, count: per)
                ys.append(labels[s])
            }
        }
        return (t, ys)
    }

    /// One augmented batch of the samples at `indices` (see ``Augmentation``); the random
    /// crops and flips are drawn from `generator`, sample by sample in order.
    public func batch(_ indices: some Collection<Int>, augmentation: Augmentation,
                      generator: inout SeededGenerator) -> (Tensor, [Int]) {
        let per = sampleSize
        let t = Tensor.empty([indices.count, channels, height, width])
        let p = t.mutablePointer
        var ys: [Int] = []
        ys.reserveCapacity(indices.count)
        pixels.withUnsafeBufferPointer { src in
            for (j, s) in indices.enumerated() {
                let draw = augmentation.draw(using: &generator)
                Augmentation.transform(src.baseAddress! + s * per, into: p + j * per, channels: channels,
                                       height: height, width: width, padding: augmentation.padding, draw: draw)
                ys.append(labels[s])
            }
        }
        return (t, ys)
    }

    /// Batches in a seeded random order (the last partial batch is dropped when `dropLast`).
    public func batches(size: Int, shuffle seed: UInt64?, dropLast: Bool = false) -> [(Tensor, [Int])] {
        batchIndices(size: size, shuffle: seed, dropLast: dropLast).map { batch($0) }
    }

    /// Batches in a seeded random order, each sample augmented (random crop of the
    /// zero-padded image, horizontal flip) with draws from `generator`; the same seed, generator
    /// state and augmentation give the same batches.
    public func batches(size: Int, shuffle seed: UInt64?, dropLast: Bool = false, augmentation: Augmentation,
                        generator: inout SeededGenerator) -> [(Tensor, [Int])] {
        batchIndices(size: size, shuffle: seed, dropLast: dropLast).map {
            batch($0, augmentation: augmentation, generator: &generator)
        }
    }

    // MARK: Split

    /// A seeded, deterministic split into training and validation sets, stratified by class:
    /// the validation set has `round(validationFraction × count)` images, spread over the classes
    /// in proportion to their sizes (largest remainders get the leftover images, ties to the lower
    /// label), chosen at random within each class. Both parts keep the original sample order, the
    /// classes and the class names; they are disjoint and together hold every sample once.
    public func split(validationFraction: Double, seed: UInt64) -> (train: LabelledDataset, validation: LabelledDataset) {
        precondition((0...1).contains(validationFraction), "validationFraction must be in [0, 1]")
        var byLabel: [Int: [Int]] = [:]
        for (i, y) in labels.enumerated() { byLabel[y, default: []].append(i) }
        let keys = byLabel.keys.sorted()
        let total = Int((validationFraction * Double(count)).rounded())
        // Per-class quotas: floors, then the leftover to the largest fractional parts.
        var quota: [Int: Int] = [:]
        var rest: [(frac: Double, label: Int)] = []
        var assigned = 0
        for k in keys {
            let exact = validationFraction * Double(byLabel[k]!.count)
            let q = Int(exact.rounded(.down))
            quota[k] = q; assigned += q
            rest.append((exact - Double(q), k))
        }
        rest.sort { $0.frac != $1.frac ? $0.frac > $1.frac : $0.label < $1.label }
        for r in rest.prefix(max(0, total - assigned)) { quota[r.label]! += 1 }
        var g = SeededGenerator(seed: seed)
        var isValidation = [Bool](repeating: false, count: count)
        for k in keys {
            var members = byLabel[k]!
            members.shuffle(using: &g)
            for i in members.prefix(quota[k]!) { isValidation[i] = true }
        }
        let validation = (0..<count).filter { isValidation[$0] }
        let train = (0..<count).filter { !isValidation[$0] }
        return (subset(train), subset(validation))
    }

    // MARK: 8-bit images

    /// Image `i` as 8-bit samples, interleaved `height × width × channels` (HWC: RGBRGB… rows for
    /// 3 channels, plain rows for 1), each value `round(255 × pixel)` clamped to 0…255: the layout
    /// JPEG/WebP/PNG encoders take.
    public func image8(at i: Int) -> [UInt8] {
        precondition(i >= 0 && i < count, "index \(i) out of range 0..<\(count)")
        let c = channels, hw = height * width, per = sampleSize
        return [UInt8](unsafeUninitializedCapacity: per) { dst, n in
            pixels.withUnsafeBufferPointer { all in
                let src = all.baseAddress! + i * per
                for ch in 0..<c {
                    let plane = src + ch * hw
                    for k in 0..<hw {
                        // Round half up, clamp to 0…255 (NaN → 0).
                        let v = Float.minimum(Float.maximum(plane[k] * 255 + 0.5, 0), 255)
                        dst[k * c + ch] = UInt8(v)
                    }
                }
            }
            n = per
        }
    }

    /// Every image as 8-bit interleaved HWC samples (see ``image8(at:)``) with its label.
    public func uint8Images() -> [(pixels: [UInt8], label: Int)] {
        (0..<count).map { (image8(at: $0), labels[$0]) }
    }

    /// A dataset from 8-bit images laid out interleaved `height × width × channels` (HWC, as
    /// decoders return them; see ``image8(at:)``): each becomes planar CHW scaled by 1/255.
    public init(images8: [[UInt8]], labels: [Int], channels: Int, height: Int, width: Int, classes: Int,
                classNames: [String] = []) {
        precondition(images8.count == labels.count, "\(images8.count) images but \(labels.count) labels")
        let hw = height * width, per = channels * hw
        var pixels = [Float](repeating: 0, count: images8.count * per)
        pixels.withUnsafeMutableBufferPointer { dst in
            for (i, image) in images8.enumerated() {
                precondition(image.count == per, "image \(i) has \(image.count) bytes, expected \(height)×\(width)×\(channels)")
                image.withUnsafeBufferPointer { src in
                    let out = dst.baseAddress! + i * per
                    for ch in 0..<channels {
                        for k in 0..<hw { out[ch * hw + k] = Float(src[k * channels + ch]) / 255 }
                    }
                }
            }
        }
        self.init(pixels: pixels, labels: labels, channels: channels, height: height, width: width,
                  classes: classes, classNames: classNames)
    }
}
