import Dispatch
import Foundation

/// The result of coding a whole dataset with one baseline codec at one quality, with the
/// bytes counted two ways: as complete files, and with the headers sent once for the dataset.
public struct CodecMeasurement: Sendable {
    /// The codec.
    public var kind: ImageCodecKind
    /// The quality setting (JPEG 1...100, WebP 0...100).
    public var quality: Int
    /// Number of images coded.
    public var images: Int
    /// Pixel positions per image (height × width), whatever the channel count.
    public var pixelsPerImage: Int
    /// Sum of the sizes of the complete files.
    public var wholeFileBytes: Int
    /// The header sent once for the dataset. JPEG: every distinct shared part (everything
    /// before SOS) counted once each; with standard tables and same-sized images there is a
    /// single one. WebP: the largest container header (RIFF + chunk header, 20 bytes, plus a
    /// pad byte when the payload size is odd).
    public var sharedHeaderBytes: Int
    /// Sum of the per-image parts (JPEG: SOS header, entropy-coded data, EOI; WebP: the VP8 bitstream).
    public var perImageBytes: Int
    /// `8 * wholeFileBytes / (images * pixelsPerImage)`: bits per pixel position, as the CDC paper counts.
    public var bitsPerPixelWholeFiles: Double
    /// `8 * (sharedHeaderBytes + perImageBytes) / (images * pixelsPerImage)`.
    public var bitsPerPixelSharedHeaders: Double
    /// The decoded images, in input order, with the input's channel count
    /// (empty when measured without decoding, as `qualities(bracketing:)` does internally).
    public var decoded: [RawImage]

    /// Distinct shared parts found (JPEG); 1 for WebP. More than one means the per-dataset
    /// header would have to carry several table sets, and all of them are counted.
    public var distinctSharedParts: Int
}

/// Codes a dataset with JPEG or WebP and measures the bytes honestly.
public enum BaselineCodec {
    /// Encodes every image with `kind` at `quality`, decodes it back, and counts the bytes.
    ///
    /// All images must have the same size and channel count (the shared-header accounting
    /// assumes it). Work is spread over the cores with `DispatchQueue.concurrentPerform`;
    /// each worker has its own TurboJPEG handles (they are not thread-safe).
    public static func measure(_ images: [RawImage], kind: ImageCodecKind, quality: Int) throws -> CodecMeasurement {
        try measure(images, kind: kind, quality: quality, decode: true)
    }

    /// For each target rate (bits per pixel, as read by `counting`, e.g.
    /// `\.bitsPerPixelWholeFiles`), the quality in 1...100 whose measured rate on `sample` is
    /// closest (ties: the lower quality). Used to pick qualities whose rates bracket 1–5 bpp.
    ///
    /// The result is monotone: for targets sorted ascending the qualities do not decrease
    /// (if the measured rate is not monotone in the quality, a quality that would go down is
    /// raised to the previous one). Qualities are returned in the order of `targets`.
    public static func qualities(bracketing targets: [Double], kind: ImageCodecKind, sample: [RawImage],
                                 counting: KeyPath<CodecMeasurement, Double>) throws -> [Int] {
        guard !targets.isEmpty else { return [] }
        var rates: [(quality: Int, bpp: Double)] = []
        for quality in 1...100 {
            let m = try measure(sample, kind: kind, quality: quality, decode: false)
            rates.append((quality, m[keyPath: counting]))
        }
        var result = [Int](repeating: 0, count: targets.count)
        var previous = 1
        for index in targets.indices.sorted(by: { targets[$0] < targets[$1] }) {
            let target = targets[index]
            var best = rates[0]
            for rate in rates.dropFirst() where abs(rate.bpp - target) < abs(best.bpp - target) {
                best = rate
            }
            previous = max(previous, best.quality)
            result[index] = previous
        }
        return result
    }

    /// One image's coding result.
    private struct Coded {
        var fileBytes: Int
        var shared: [UInt8]      // JPEG: the shared part itself
        var headerBytes: Int
        var perImageBytes: Int
        var decoded: RawImage?
    }

    static func measure(_ images: [RawImage], kind: ImageCodecKind, quality: Int,
                        decode: Bool) throws -> CodecMeasurement {
        guard let first = images.first else {
            throw ImageCodecError.invalidArgument("cannot measure an empty dataset")
        }
        for (i, image) in images.enumerated() {
            try image.validate()
            guard image.width == first.width, image.height == first.height, image.channels == first.channels else {
                throw ImageCodecError.invalidArgument(
                    "image \(i) is \(image.width)x\(image.height)x\(image.channels), "
                        + "image 0 is \(first.width)x\(first.height)x\(first.channels)")
            }
        }
        switch kind {
        case .jpeg:
            guard (1...100).contains(quality) else {
                throw ImageCodecError.invalidArgument("JPEG quality must be in 1...100, not \(quality)")
            }
        case .webp:
            guard (0...100).contains(quality) else {
                throw ImageCodecError.invalidArgument("WebP quality must be in 0...100, not \(quality)")
            }
        }

        let count = images.count
        let results = UnsafeMutableBufferPointer<Result<Coded, any Error>?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        let workers = min(count, max(1, ProcessInfo.processInfo.activeProcessorCount * 4))
        let slots = SendableBuffer(results)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let range = (count * worker / workers)..<(count * (worker + 1) / workers)
            do {
                var coder = try Coder(kind: kind)
                for i in range {
                    slots.buffer[i] = Result { try coder.code(images[i], quality: quality, decode: decode) }
                }
            } catch {
                for i in range { slots.buffer[i] = .failure(error) }
            }
        }

        var wholeFileBytes = 0, perImageBytes = 0, maxHeader = 0
        var sharedParts = Set<[UInt8]>()
        var decoded: [RawImage] = []
        decoded.reserveCapacity(decode ? count : 0)
        for i in 0..<count {
            let coded = try results[i]!.get()
            wholeFileBytes += coded.fileBytes
            perImageBytes += coded.perImageBytes
            maxHeader = max(maxHeader, coded.headerBytes)
            if kind == .jpeg { sharedParts.insert(coded.shared) }
            if let image = coded.decoded { decoded.append(image) }
        }
        let sharedHeaderBytes: Int
        switch kind {
        case .jpeg: sharedHeaderBytes = sharedParts.reduce(0) { $0 + $1.count }
        case .webp: sharedHeaderBytes = maxHeader
        }
        let pixels = Double(count * first.pixelCount)
        return CodecMeasurement(
            kind: kind, quality: quality, images: count, pixelsPerImage: first.pixelCount,
            wholeFileBytes: wholeFileBytes, sharedHeaderBytes: sharedHeaderBytes, perImageBytes: perImageBytes,
            bitsPerPixelWholeFiles: 8 * Double(wholeFileBytes) / pixels,
            bitsPerPixelSharedHeaders: 8 * Double(sharedHeaderBytes + perImageBytes) / pixels,
            decoded: decoded, distinctSharedParts: kind == .jpeg ? sharedParts.count : 1)
    }

    /// A worker's codec state: TurboJPEG handles for JPEG, nothing for WebP.
    private struct Coder {
        let kind: ImageCodecKind
        let compressor: TurboJPEGCompressor?
        let decompressor: TurboJPEGDecompressor?

        init(kind: ImageCodecKind) throws {
            self.kind = kind
            compressor = kind == .jpeg ? try TurboJPEGCompressor() : nil
            decompressor = kind == .jpeg ? try TurboJPEGDecompressor() : nil
        }

        mutating func code(_ image: RawImage, quality: Int, decode: Bool) throws -> Coded {
            switch kind {
            case .jpeg:
                let file = try compressor!.encode(image, quality: quality)
                let (shared, perImage) = try JPEG.split(file)
                let decoded = decode ? try decompressor!.decode(file, channels: image.channels) : nil
                return Coded(fileBytes: file.count, shared: shared, headerBytes: shared.count,
                             perImageBytes: perImage.count, decoded: decoded)
            case .webp:
                let file = try WebP.encode(image, quality: Float(quality))
                let (header, payload) = try WebP.split(file)
                let decoded = decode ? try WebP.decode(file, channels: image.channels) : nil
                return Coded(fileBytes: file.count, shared: [], headerBytes: header,
                             perImageBytes: payload, decoded: decoded)
            }
        }
    }
}

/// A result buffer whose slots are each written by exactly one worker of a
/// `concurrentPerform`, and read only after it returns.
private struct SendableBuffer<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
    init(_ buffer: UnsafeMutableBufferPointer<Element>) { self.buffer = buffer }
}
