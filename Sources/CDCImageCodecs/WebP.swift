import CDCFileIO
import CWebP

/// Lossy WebP (VP8) through libwebp, with the file split into container headers and the
/// per-image VP8 bitstream.
///
/// Encoding uses libwebp's default preset at the given quality with `method = 6` (slowest,
/// smallest files: the strongest baseline). Grayscale images are encoded as RGB with
/// R = G = B (VP8 is always YUV 4:2:0; the chroma planes are then constant) and decoded back
/// to BT.601 luma.
public enum WebP {
    /// Encodes `image` as a lossy WebP file at `quality` (0...100).
    public static func encode(_ image: RawImage, quality: Float) throws -> [UInt8] {
        try image.validate()
        guard quality >= 0, quality <= 100 else {
            throw ImageCodecError.invalidArgument("WebP quality must be in 0...100, not \(quality)")
        }
        var config = WebPConfig()
        guard WebPConfigInit(&config) != 0 else {
            throw ImageCodecError.library(call: "WebPConfigInit", message: "libwebp version mismatch")
        }
        config.quality = quality
        config.method = 6
        guard WebPValidateConfig(&config) != 0 else {
            throw ImageCodecError.library(call: "WebPValidateConfig", message: "invalid configuration")
        }
        var picture = WebPPicture()
        guard WebPPictureInit(&picture) != 0 else {
            throw ImageCodecError.library(call: "WebPPictureInit", message: "libwebp version mismatch")
        }
        defer { WebPPictureFree(&picture) }
        picture.width = Int32(image.width)
        picture.height = Int32(image.height)
        picture.use_argb = 0
        let rgb: [UInt8]
        if image.channels == 3 {
            rgb = image.pixels
        } else {
            var expanded = [UInt8](repeating: 0, count: image.pixels.count * 3)
            for (i, v) in image.pixels.enumerated() {
                expanded[3 * i] = v; expanded[3 * i + 1] = v; expanded[3 * i + 2] = v
            }
            rgb = expanded
        }
        let imported = rgb.withUnsafeBufferPointer { buffer in
            WebPPictureImportRGB(&picture, buffer.baseAddress, Int32(image.width * 3))
        }
        guard imported != 0 else {
            throw ImageCodecError.library(call: "WebPPictureImportRGB", message: encodingMessage(picture.error_code))
        }
        var writer = WebPMemoryWriter()
        WebPMemoryWriterInit(&writer)
        defer { WebPMemoryWriterClear(&writer) }
        let encoded = withUnsafeMutablePointer(to: &writer) { writerPointer in
            picture.writer = WebPMemoryWrite
            picture.custom_ptr = UnsafeMutableRawPointer(writerPointer)
            defer { picture.custom_ptr = nil }
            return WebPEncode(&config, &picture)
        }
        guard encoded != 0, let memory = writer.mem else {
            throw ImageCodecError.library(call: "WebPEncode", message: encodingMessage(picture.error_code))
        }
        return Array(UnsafeBufferPointer(start: memory, count: writer.size))
    }

    /// Decodes a WebP file to `channels` (1: BT.601 luma of the decoded RGB; 3: RGB).
    /// Truncated or corrupt files throw.
    public static func decode(_ bytes: [UInt8], channels: Int) throws -> RawImage {
        guard channels == 1 || channels == 3 else {
            throw ImageCodecError.invalidArgument("channels must be 1 or 3, not \(channels)")
        }
        guard !bytes.isEmpty else { throw ImageCodecError.malformedFile("empty WebP file") }
        var width: Int32 = 0, height: Int32 = 0
        let info = bytes.withUnsafeBufferPointer { buffer in
            WebPGetInfo(buffer.baseAddress, buffer.count, &width, &height)
        }
        guard info != 0 else {
            throw ImageCodecError.library(call: "WebPGetInfo", message: "not a WebP file or unsupported features")
        }
        guard width > 0, height > 0, Int(width) * Int(height) * 3 <= maximumDecodedSamples else {
            throw ImageCodecError.malformedFile("WebP image size \(width)x\(height) is not acceptable")
        }
        let decoded = bytes.withUnsafeBufferPointer { buffer in
            WebPDecodeRGB(buffer.baseAddress, buffer.count, &width, &height)
        }
        guard let decoded else {
            throw ImageCodecError.library(call: "WebPDecodeRGB", message: "corrupt or truncated bitstream")
        }
        defer { WebPFree(decoded) }
        let area = Int(width) * Int(height)
        let rgb = UnsafeBufferPointer(start: decoded, count: area * 3)
        if channels == 3 {
            return RawImage(width: Int(width), height: Int(height), channels: 3, pixels: Array(rgb))
        }
        var gray = [UInt8](repeating: 0, count: area)
        for i in 0..<area { gray[i] = luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) }
        return RawImage(width: Int(width), height: Int(height), channels: 1, pixels: gray)
    }

    /// Bytes of the file that are per-image payload (the VP8 bitstream) vs. container headers
    /// (RIFF + chunk headers) that a dataset-level format would send once.
    ///
    /// `headerBytes + payloadBytes == file.count`. The payload is the data of the image chunks
    /// (`VP8 `, and `VP8L`/`ALPH` in files this module does not write); everything else is header:
    /// the 12-byte RIFF header, the 8-byte chunk headers, the pad byte that RIFF adds after
    /// odd-sized chunks, and any `VP8X`/metadata chunks. Throws on a malformed container.
    public static func split(_ file: [UInt8]) throws -> (headerBytes: Int, payloadBytes: Int) {
        let n = file.count
        guard n >= 20, file[0..<4].elementsEqual("RIFF".utf8), file[8..<12].elementsEqual("WEBP".utf8) else {
            throw ImageCodecError.malformedFile("not a RIFF/WEBP file")
        }
        let riffSize = Int(LittleEndian.load(UInt32.self, from: file, at: 4))
        guard riffSize + 8 <= n else {
            throw ImageCodecError.malformedFile("RIFF size \(riffSize) exceeds the file (\(n) bytes)")
        }
        let end = riffSize + 8
        var offset = 12
        var payload = 0
        var sawImage = false
        while offset < end {
            guard offset + 8 <= end else { throw ImageCodecError.malformedFile("truncated WebP chunk header") }
            let tag = String(decoding: file[offset..<offset + 4], as: UTF8.self)
            let size = Int(LittleEndian.load(UInt32.self, from: file, at: offset + 4))
            guard offset + 8 + size <= end else {
                throw ImageCodecError.malformedFile("WebP chunk '\(tag)' runs past the end")
            }
            if tag == "VP8 " || tag == "VP8L" || tag == "ALPH" {
                payload += size
                if tag != "ALPH" { sawImage = true }
            }
            offset += 8 + size + (size & 1)
        }
        guard sawImage else { throw ImageCodecError.malformedFile("WebP file has no VP8/VP8L chunk") }
        return (n - payload, payload)
    }

    private static func encodingMessage(_ code: WebPEncodingError) -> String {
        switch code {
        case VP8_ENC_OK: return "no error recorded"
        case VP8_ENC_ERROR_OUT_OF_MEMORY: return "out of memory"
        case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY: return "bitstream out of memory"
        case VP8_ENC_ERROR_NULL_PARAMETER: return "null parameter"
        case VP8_ENC_ERROR_INVALID_CONFIGURATION: return "invalid configuration"
        case VP8_ENC_ERROR_BAD_DIMENSION: return "bad dimension"
        case VP8_ENC_ERROR_PARTITION0_OVERFLOW: return "partition 0 overflow"
        case VP8_ENC_ERROR_PARTITION_OVERFLOW: return "partition overflow"
        case VP8_ENC_ERROR_BAD_WRITE: return "bad write"
        case VP8_ENC_ERROR_FILE_TOO_BIG: return "file too big"
        case VP8_ENC_ERROR_USER_ABORT: return "user abort"
        default: return "error code \(code.rawValue)"
        }
    }
}
