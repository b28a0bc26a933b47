/// The baseline image codecs that Classification Driven Compression is compared with.
public enum ImageCodecKind: String, Sendable, CaseIterable {
    /// Baseline JPEG through libjpeg-turbo's TurboJPEG API (standard Huffman tables,
    /// 4:4:4 for RGB, a single grayscale component for one-channel images).
    case jpeg
    /// Lossy WebP (VP8) through libwebp.
    case webp
}

/// An uncompressed 8-bit image: `height` rows of `width` pixels, each pixel `channels`
/// interleaved samples (1 = grayscale, 3 = RGB), rows stored top to bottom without padding.
public struct RawImage: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Samples per pixel: 1 (grayscale) or 3 (RGB).
    public var channels: Int
    /// `width * height * channels` samples, row-major and interleaved.
    public var pixels: [UInt8]

    /// Wraps the given samples; they are checked when the image is encoded.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Number of pixel positions (`width * height`), whatever the channel count.
    public var pixelCount: Int { width * height }

    /// Throws unless the geometry is positive, `channels` is 1 or 3 and `pixels` has the right size.
    func validate() throws {
        guard width > 0, height > 0 else {
            throw ImageCodecError.invalidImage("size \(width)x\(height) is not positive")
        }
        guard channels == 1 || channels == 3 else {
            throw ImageCodecError.invalidImage("channels must be 1 or 3, not \(channels)")
        }
        let (area, o1) = width.multipliedReportingOverflow(by: height)
        let (samples, o2) = area.multipliedReportingOverflow(by: channels)
        guard !o1, !o2, samples == pixels.count else {
            throw ImageCodecError.invalidImage(
                "\(width)x\(height)x\(channels) needs \(width &* height &* channels) samples, got \(pixels.count)")
        }
    }
}

/// Errors of the baseline codecs. Library failures name the call and the library's message.
public enum ImageCodecError: Error, CustomStringConvertible {
    /// A libjpeg-turbo or libwebp call failed.
    case library(call: String, message: String)
    /// The input image is malformed (size, channel count or sample count).
    case invalidImage(String)
    /// A compressed file is not well formed (bad markers, truncated, wrong container).
    case malformedFile(String)
    /// An argument is out of range (quality, channel count, empty dataset, mixed sizes).
    case invalidArgument(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .library(let call, let message): return "\(call) failed: \(message)"
        case .invalidImage(let message): return "invalid image: \(message)"
        case .malformedFile(let message): return "malformed file: \(message)"
        case .invalidArgument(let message): return "invalid argument: \(message)"
        }
    }
}

/// Largest decoded image the decoders accept (samples), so that garbage headers cannot
/// make them allocate absurd buffers.
let maximumDecodedSamples = 1 << 28

/// BT.601 luma of an RGB pixel, rounded, as libjpeg computes Y.
@inline(__always)
func luma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
    let weighted: Int = 299 * Int(r) + 587 * Int(g) + 114 * Int(b)
    return UInt8((weighted + 500) / 1000)
}
