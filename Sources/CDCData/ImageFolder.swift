import CPNG
import CTurboJPEG
import Dispatch
import Foundation

extension LabelledDataset {
    /// File extensions ``imageFolder(root:channels:)`` loads (compared case-insensitively).
    public static let imageFolderExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// Loads a folder of labelled images laid out as `root/<class>/…/*.png|*.jpg|*.jpeg`
    /// (torchvision's `ImageFolder`).
    ///
    /// - Classes are the subdirectories of `root`, sorted by name (label = position,
    ///   ``classNames`` = the names); hidden entries (names starting with `.`) and files with
    ///   other extensions are skipped; every class must hold at least one image. Images are
    ///   found recursively below each class directory and taken in sorted relative-path order.
    /// - Files are decoded by content (PNG or JPEG signature), whatever their extension: PNG with
    ///   libpng (gray, gray+alpha, RGB, RGBA, palette, 1–16 bits; 16-bit samples reduced to 8,
    ///   alpha composited onto black), JPEG with TurboJPEG (gray or YCbCr; a libjpeg warning such
    ///   as a truncated file counts as corrupt).
    /// - `channels`: 1 or 3; when nil, 1 if every image is grayscale, else 3 (gray images are
    ///   then replicated to RGB). A given `channels` converts in the decoders (RGB → gray luma).
    /// - All images must have the same size.
    /// Errors (no class directories, an empty class, an unreadable or corrupt file, a size that
    /// differs from the first image's) name the directory or file; when several files are bad
    /// the first in load order is named. Decoding runs in parallel on all cores.
    public static func imageFolder(root: URL, channels: Int? = nil) throws -> LabelledDataset {
        if let channels, channels != 1 && channels != 3 {
            throw DatasetError("\(root.path): channels must be 1 or 3, not \(channels)")
        }
        let (classNames, files, labels) = try listImageFolder(root)
        let n = files.count

        // Decode in parallel: each worker takes every `workers`-th file with its own TurboJPEG handle.
        var decoded = [Result<DecodedImage, DatasetError>?](repeating: nil, count: n)
        let workers = max(1, min(n, ProcessInfo.processInfo.activeProcessorCount))
        decoded.withUnsafeMutableBufferPointer { slots in
            let slots = UnsafeSendable(slots)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let decoder = ImageDecoder()
                for i in stride(from: w, to: n, by: workers) {
                    slots.value[i] = Result { () throws(DatasetError) in try decoder.decode(file: files[i], channels: channels) }
                }
            }
        }
        let images = try decoded.map { try $0!.get() }

        let first = images[0]
        for (i, im) in images.enumerated() where im.width != first.width || im.height != first.height {
            throw DatasetError("\(files[i].path) is \(im.width)×\(im.height) but \(files[0].path) is "
                               + "\(first.width)×\(first.height): all images of a folder must have the same size")
        }
        let c = channels ?? (images.allSatisfy { $0.channels == 1 } ? 1 : 3)
        let (h, w) = (first.height, first.width), hw = h * w, per = c * hw

        // HWC bytes → CHW floats in [0, 1], in parallel (gray replicated when c = 3).
        var pixels = [Float](repeating: 0, count: n * per)
        pixels.withUnsafeMutableBufferPointer { dst in
            let dst = UnsafeSendable(dst)
            DispatchQueue.concurrentPerform(iterations: workers) { wk in
                for i in stride(from: wk, to: n, by: workers) {
                    let im = images[i], out = dst.value.baseAddress! + i * per
                    im.pixels.withUnsafeBufferPointer { src in
                        for ch in 0..<c {
                            let sc = im.channels == 1 ? 0 : ch, plane = out + ch * hw
                            for k in 0..<hw { plane[k] = Float(src[k * im.channels + sc]) / 255 }
                        }
                    }
                }
            }
        }
        return LabelledDataset(pixels: pixels, labels: labels, channels: c, height: h, width: w,
                            classes: classNames.count, classNames: classNames)
    }

    /// The class names, image files (in load order) and their labels of an image folder.
    static func listImageFolder(_ root: URL) throws -> (classNames: [String], files: [URL], labels: [Int]) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw DatasetError("\(root.path): no such directory")
        }
        let entries = try fm.contentsOfDirectory(atPath: root.path)
        let classNames = entries.filter { name in
            var d: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: root.appendingPathComponent(name).path, isDirectory: &d)
                && d.boolValue
        }.sorted()
        guard !classNames.isEmpty else { throw DatasetError("\(root.path): no class subdirectories (expected root/<class>/<image>)") }
        var files: [URL] = [], labels: [Int] = []
        for (label, name) in classNames.enumerated() {
            let dir = root.appendingPathComponent(name, isDirectory: true)
            let found = (fm.subpaths(atPath: dir.path) ?? []).filter { path in
                let url = dir.appendingPathComponent(path)
                var d: ObjCBool = false
                return !path.split(separator: "/").contains { $0.hasPrefix(".") }
                    && imageFolderExtensions.contains(url.pathExtension.lowercased())
                    && fm.fileExists(atPath: url.path, isDirectory: &d) && !d.boolValue
            }.sorted()
            guard !found.isEmpty else {
                throw DatasetError("\(dir.path): class directory holds no .png/.jpg/.jpeg images")
            }
            for path in found { files.append(dir.appendingPathComponent(path)); labels.append(label) }
        }
        return (classNames, files, labels)
    }
}

/// Wraps a value (a buffer pointer whose disjoint elements separate threads write) for a
/// concurrent closure.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A decoded image: 8-bit samples interleaved `height × width × channels` (1 gray or 3 RGB).
struct DecodedImage: Sendable {
    var width: Int, height: Int, channels: Int
    var pixels: [UInt8]
}

/// Decodes PNG (libpng simplified API) and JPEG (TurboJPEG) files; one per thread (it owns a
/// TurboJPEG handle, created on first use).
final class ImageDecoder {
    private var tj: tjhandle?

    init() {}
    deinit { if let tj { tjDestroy(tj) } }

    /// Reads and decodes `file` to `channels` (1 or 3) or, when nil, to its own: 1 for
    /// grayscale images, 3 otherwise. Errors name the file.
    func decode(file: URL, channels: Int?) throws(DatasetError) -> DecodedImage {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw DatasetError("\(file.path): cannot read (\(error.localizedDescription))")
        }
        let result: Result<DecodedImage, DatasetError> = data.withUnsafeBytes { raw in
            let b = raw.bindMemory(to: UInt8.self)
            if b.count >= 8 && Array(b.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] {
                return Result { () throws(DatasetError) in try decodePNG(raw, channels: channels, name: file.path) }
            }
            if b.count >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF {
                return Result { () throws(DatasetError) in try decodeJPEG(b, channels: channels, name: file.path) }
            }
            return .failure(DatasetError("\(file.path): corrupt image: neither a PNG nor a JPEG file (bad signature)"))
        }
        return try result.get()
    }

    /// PNG via `png_image_begin_read_from_memory` / `png_image_finish_read`.
    func decodePNG(_ bytes: UnsafeRawBufferPointer, channels: Int?, name: String) throws(DatasetError) -> DecodedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func message() -> String {
            withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
            let m = message()
            png_image_free(&image)
            throw DatasetError("\(name): corrupt PNG: \(m)")
        }
        let isGray = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) == 0
        let c = channels ?? (isGray ? 1 : 3)
        image.format = c == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        // 16-bit files without gamma information hold sRGB values (as other readers assume), not linear ones.
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let (w, h) = (Int(image.width), Int(image.height))
        guard w > 0, h > 0, w * h <= 1 << 28 else {
            png_image_free(&image)
            throw DatasetError("\(name): corrupt PNG: \(w > 0 && h > 0 ? "unsupported" : "invalid") size \(w)×\(h)")
        }
        var black = png_color(red: 0, green: 0, blue: 0)
        var ok: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: w * h * c) { buf, n in
            ok = png_image_finish_read(&image, &black, buf.baseAddress, Int32(w * c), nil)
            n = w * h * c
        }
        guard ok != 0 else {
            let m = message()
            png_image_free(&image)
            throw DatasetError("\(name): corrupt PNG: \(m)")
        }
        return DecodedImage(width: w, height: h, channels: c, pixels: pixels)
    }

    /// JPEG via `tjDecompressHeader3` / `tjDecompress2`.
    func decodeJPEG(_ bytes: UnsafeBufferPointer<UInt8>, channels: Int?, name: String) throws(DatasetError) -> DecodedImage {
        if tj == nil { tj = tjInitDecompress() }
        guard let tj else { throw DatasetError("\(name): cannot create a TurboJPEG decompressor") }
        func message() -> String { String(cString: tjGetErrorStr2(tj)) }
        var w: Int32 = 0, h: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(tj, bytes.baseAddress, UInt(bytes.count), &w, &h, &subsamp, &colorspace) == 0 else {
            throw DatasetError("\(name): corrupt JPEG: \(message())")
        }
        guard w > 0, h > 0, Int(w) * Int(h) <= 1 << 28 else {
            throw DatasetError("\(name): corrupt JPEG: \(w > 0 && h > 0 ? "unsupported" : "invalid") size \(w)×\(h)")
        }
        let isGray = colorspace == Int32(TJCS_GRAY.rawValue)
        let c = channels ?? (isGray ? 1 : 3)
        let format = c == 1 ? TJPF_GRAY : TJPF_RGB
        var status: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: Int(w) * Int(h) * c) { buf, n in
            buf.initialize(repeating: 0)
            status = tjDecompress2(tj, bytes.baseAddress, UInt(bytes.count), buf.baseAddress, w, 0, h,
                                   Int32(format.rawValue), 0)
            n = buf.count
        }
        guard status == 0 else { throw DatasetError("\(name): corrupt JPEG: \(message())") }
        return DecodedImage(width: Int(w), height: Int(h), channels: c, pixels: pixels)
    }
}
