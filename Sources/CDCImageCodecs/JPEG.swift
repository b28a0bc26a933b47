import CTurboJPEG

/// Baseline JPEG through libjpeg-turbo's TurboJPEG API, with the file split into the part
/// shared by every image coded with the same settings and the per-image part.
///
/// Files are baseline (sequential, not progressive) with the example quantization tables of
/// the JPEG specification (Annex K) scaled to the quality, its standard Huffman tables, a JFIF APP0 segment,
/// 4:4:4 sampling for RGB and a single component for grayscale. Because the tables are
/// the standard ones (TurboJPEG does not optimize Huffman tables unless the environment
/// variable `TJ_OPTIMIZE=1` is set), everything before the SOS marker depends only on
/// the quality, the image size and the channel count, so a dataset of same-sized images
/// needs it once: that is what JPEG's abbreviated streams (tables-only datastream plus
/// abbreviated image datastreams) allow.
public enum JPEG {
    /// Encodes `image` at `quality` (1...100): baseline, 4:4:4 for RGB, grayscale for one channel.
    public static func encode(_ image: RawImage, quality: Int) throws -> [UInt8] {
        let compressor = try TurboJPEGCompressor()
        return try compressor.encode(image, quality: quality)
    }

    /// Decodes a JPEG file to `channels` (1: luma only; 3: RGB) whatever the file's colour space.
    ///
    /// Decoding is strict: libjpeg warnings (a truncated file, corrupt entropy-coded data)
    /// are errors, so a damaged file throws instead of decoding to gray filler.
    public static func decode(_ bytes: [UInt8], channels: Int) throws -> RawImage {
        let decompressor = try TurboJPEGDecompressor()
        return try decompressor.decode(bytes, channels: channels)
    }

    /// Splits a JPEG file into the part shared by every image coded with the same settings
    /// (SOI, APPn, DQT, DHT, SOF; everything before SOS), and the per-image rest (SOS header,
    /// entropy-coded data, EOI). `join` reassembles a decodable file.
    ///
    /// The shared part contains the SOF frame header and therefore the image size: it is
    /// shared by images of the same size, channel count and quality. Throws if the file does
    /// not start with SOI, a marker segment runs past the end, or there is no SOS.
    public static func split(_ file: [UInt8]) throws -> (shared: [UInt8], perImage: [UInt8]) {
        let sos = try startOfScan(file)
        return (Array(file[..<sos]), Array(file[sos...]))
    }

    /// Reassembles a file from a shared part and a per-image part (their concatenation).
    public static func join(shared: [UInt8], perImage: [UInt8]) -> [UInt8] {
        shared + perImage
    }

    /// Offset of the first SOS marker (its 0xFF byte) in a JPEG file.
    static func startOfScan(_ file: [UInt8]) throws -> Int {
        let n = file.count
        guard n >= 4, file[0] == 0xFF, file[1] == 0xD8 else {
            throw ImageCodecError.malformedFile("JPEG file does not start with SOI (FF D8)")
        }
        var i = 2
        while true {
            guard i < n else { throw ImageCodecError.malformedFile("JPEG file ends before SOS") }
            guard file[i] == 0xFF else {
                throw ImageCodecError.malformedFile("expected a JPEG marker at offset \(i)")
            }
            var j = i + 1
            while j < n && file[j] == 0xFF { j += 1 }          // fill bytes
            guard j < n else { throw ImageCodecError.malformedFile("JPEG file ends inside a marker") }
            let marker = file[j]
            switch marker {
            case 0xDA:                                       // SOS
                return i
            case 0xD9:                                       // EOI: tables-only stream
                throw ImageCodecError.malformedFile("JPEG file has no SOS (tables only?)")
            case 0x00, 0xD8:
                throw ImageCodecError.malformedFile(
                    "unexpected JPEG marker FF \(String(marker, radix: 16)) at offset \(j - 1)")
            case 0x01, 0xD0...0xD7:                          // standalone markers
                i = j + 1
            default:                                         // segment with a length
                guard j + 2 < n else { throw ImageCodecError.malformedFile("JPEG segment header truncated") }
                let length = Int(file[j + 1]) << 8 | Int(file[j + 2])
                guard length >= 2, j + 1 + length <= n else {
                    throw ImageCodecError.malformedFile(
                        "JPEG segment FF \(String(marker, radix: 16)) at offset \(j - 1) has bad length \(length)")
                }
                i = j + 1 + length
            }
        }
    }
}

/// The message TurboJPEG recorded for `handle` (or the global one when `handle` is nil).
private func turboJPEGMessage(_ handle: tjhandle?) -> String {
    guard let cString = tjGetErrorStr2(handle) else { return "unknown error" }
    return String(cString: cString)
}

/// One TurboJPEG compressor handle. Not thread-safe: use one per thread.
final class TurboJPEGCompressor {
    private let handle: tjhandle

    init() throws {
        guard let handle = tjInitCompress() else {
            throw ImageCodecError.library(call: "tjInitCompress", message: turboJPEGMessage(nil))
        }
        self.handle = handle
    }

    deinit { tjDestroy(handle) }

    func encode(_ image: RawImage, quality: Int) throws -> [UInt8] {
        try image.validate()
        guard (1...100).contains(quality) else {
            throw ImageCodecError.invalidArgument("JPEG quality must be in 1...100, not \(quality)")
        }
        let pixelFormat = Int32(image.channels == 1 ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue)
        let subsampling = Int32(image.channels == 1 ? TJSAMP_GRAY.rawValue : TJSAMP_444.rawValue)
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        defer { if let output { tjFree(output) } }
        let status = image.pixels.withUnsafeBufferPointer { pixels in
            tjCompress2(handle, pixels.baseAddress, Int32(image.width), 0, Int32(image.height),
                        pixelFormat, &output, &size, subsampling, Int32(quality), TJFLAG_ACCURATEDCT)
        }
        guard status == 0, let output else {
            throw ImageCodecError.library(call: "tjCompress2", message: turboJPEGMessage(handle))
        }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}

/// One TurboJPEG decompressor handle. Not thread-safe: use one per thread.
final class TurboJPEGDecompressor {
    private let handle: tjhandle

    init() throws {
        guard let handle = tjInitDecompress() else {
            throw ImageCodecError.library(call: "tjInitDecompress", message: turboJPEGMessage(nil))
        }
        self.handle = handle
    }

    deinit { tjDestroy(handle) }

    func decode(_ bytes: [UInt8], channels: Int) throws -> RawImage {
        guard channels == 1 || channels == 3 else {
            throw ImageCodecError.invalidArgument("channels must be 1 or 3, not \(channels)")
        }
        guard !bytes.isEmpty else { throw ImageCodecError.malformedFile("empty JPEG file") }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let headerStatus = bytes.withUnsafeBufferPointer { buffer in
            tjDecompressHeader3(handle, buffer.baseAddress, UInt(buffer.count),
                                &width, &height, &subsampling, &colorspace)
        }
        guard headerStatus == 0 else {
            throw ImageCodecError.library(call: "tjDecompressHeader3", message: turboJPEGMessage(handle))
        }
        guard width > 0, height > 0 else {
            // libjpeg treats a file that ends inside the headers as a tables-only stream.
            throw ImageCodecError.malformedFile("JPEG file has no image (tables only or truncated headers)")
        }
        guard Int(width) * Int(height) * channels <= maximumDecodedSamples else {
            throw ImageCodecError.malformedFile("JPEG image size \(width)x\(height) is not acceptable")
        }
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
        let pixelFormat = Int32(channels == 1 ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue)
        let status = bytes.withUnsafeBufferPointer { buffer in
            pixels.withUnsafeMutableBufferPointer { out in
                tjDecompress2(handle, buffer.baseAddress, UInt(buffer.count), out.baseAddress,
                              width, 0, height, pixelFormat, TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING)
            }
        }
        guard status == 0 else {
            throw ImageCodecError.library(call: "tjDecompress2", message: turboJPEGMessage(handle))
        }
        return RawImage(width: Int(width), height: Int(height), channels: channels, pixels: pixels)
    }
}
