import CDCData
import CPNG
import CTurboJPEG
import Foundation
import Testing

/// Writes an 8-bit (or, with `samples16`, 16-bit linear) PNG with libpng's simplified API.
func writePNG(_ url: URL, width: Int, height: Int, format: UInt32, bytes: [UInt8] = [], samples16: [UInt16]? = nil,
              colormap: [UInt8]? = nil, colormapEntries: Int = 0) throws {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    image.width = UInt32(width); image.height = UInt32(height)
    image.format = format
    image.colormap_entries = UInt32(colormapEntries)
    let ok: Int32
    if let samples16 {
        ok = samples16.withUnsafeBytes { png_image_write_to_file(&image, url.path, 0, $0.baseAddress, 0, nil) }
    } else if let colormap {
        ok = bytes.withUnsafeBytes { b in colormap.withUnsafeBytes { png_image_write_to_file(&image, url.path, 0, b.baseAddress, 0, $0.baseAddress) } }
    } else {
        ok = bytes.withUnsafeBytes { png_image_write_to_file(&image, url.path, 0, $0.baseAddress, 0, nil) }
    }
    png_image_free(&image)
    guard ok != 0 else { throw DatasetError("test: cannot write \(url.path)") }
}

/// Encodes 8-bit gray (1 channel) or RGB (3 channels) pixels as a JPEG with TurboJPEG.
func jpegBytes(_ pixels: [UInt8], width: Int, height: Int, channels: Int, quality: Int32 = 95) -> [UInt8] {
    let tj = tjInitCompress()!
    defer { tjDestroy(tj) }
    var buf: UnsafeMutablePointer<UInt8>? = nil
    var size: UInt = 0
    let format = channels == 1 ? TJPF_GRAY : TJPF_RGB, subsamp = channels == 1 ? TJSAMP_GRAY : TJSAMP_444
    let rc = pixels.withUnsafeBufferPointer {
        tjCompress2(tj, $0.baseAddress, Int32(width), 0, Int32(height), Int32(format.rawValue), &buf, &size,
                    Int32(subsamp.rawValue), quality, 0)
    }
    precondition(rc == 0, String(cString: tjGetErrorStr2(tj)))
    defer { tjFree(buf) }
    return Array(UnsafeBufferPointer(start: buf, count: Int(size)))
}

/// `LabelledDataset.imageFolder` on folders of PNG and JPEG files written here.
@Suite final class ImageFolderTests {
    let root = makeTemporaryDirectory("cdc-folder")
    deinit { try? FileManager.default.removeItem(at: root) }

    func url(_ path: String) -> URL {
        let u = root.appendingPathComponent(path)
        try! FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
        return u
    }

    /// A smooth, distinct test image: HWC bytes.
    func pattern(width: Int, height: Int, channels: Int, seed: Int) -> [UInt8] {
        (0..<(width * height * channels)).map { i in
            let c = i % channels, x = (i / channels) % width, y = i / channels / width
            return UInt8((seed * 40 + x * 9 + y * 5 + c * 60) % 256)
        }
    }

    /// A smooth test image without wrap-around edges (for lossy JPEG): HWC bytes.
    func smooth(width: Int, height: Int, channels: Int, seed: Int) -> [UInt8] {
        (0..<(width * height * channels)).map { i in
            let c = i % channels, x = (i / channels) % width, y = i / channels / width
            return UInt8(10 + x * 8 + y * 6 + c * 25 + seed * 4)
        }
    }

    /// CHW floats of one HWC image, as the dataset stores it.
    func planar(_ hwc: [UInt8], channels: Int) -> [Float] {
        let hw = hwc.count / channels
        return (0..<channels).flatMap { c in (0..<hw).map { Float(hwc[$0 * channels + c]) / 255 } }
    }

    func image(_ d: LabelledDataset, _ i: Int) -> [Float] { Array(d.pixels[(i * d.sampleSize)..<((i + 1) * d.sampleSize)]) }

    @Test func grayPNGsAndClassOrder() throws {
        let (w, h) = (5, 3)
        let imgs = (0..<4).map { pattern(width: w, height: h, channels: 1, seed: $0) }
        // Classes sorted by name whatever the creation order; extensions case-insensitive.
        try writePNG(url("zebra/b.png"), width: w, height: h, format: UInt32(PNG_FORMAT_GRAY), bytes: imgs[3])
        try writePNG(url("zebra/a.PNG"), width: w, height: h, format: UInt32(PNG_FORMAT_GRAY), bytes: imgs[2])
        try writePNG(url("ant/x1.png"), width: w, height: h, format: UInt32(PNG_FORMAT_GRAY), bytes: imgs[0])
        try writePNG(url("ant/x2.png"), width: w, height: h, format: UInt32(PNG_FORMAT_GRAY), bytes: imgs[1])
        // Ignored: other extensions, hidden files and directories, loose files in root.
        try Data("notes".utf8).write(to: url("ant/notes.txt"))
        try Data("junk".utf8).write(to: url("ant/.hidden.png"))
        try Data("junk".utf8).write(to: url(".cache/x.png"))
        try Data("junk".utf8).write(to: url("README.png"))
        let d = try LabelledDataset.imageFolder(root: root)
        #expect(d.classNames == ["ant", "zebra"])
        #expect(d.classes == 2 && d.channels == 1 && d.height == h && d.width == w)
        #expect(d.labels == [0, 0, 1, 1])
        for i in 0..<4 { #expect(image(d, i) == planar(imgs[i], channels: 1)) }
        // Forcing 3 channels replicates gray exactly.
        let rgb = try LabelledDataset.imageFolder(root: root, channels: 3)
        #expect(rgb.channels == 3)
        #expect(image(rgb, 1) == Array(repeating: planar(imgs[1], channels: 1), count: 3).flatMap { $0 })
    }

    @Test func mixedGrayAndRGBPNGs() throws {
        let (w, h) = (4, 6)
        let gray = pattern(width: w, height: h, channels: 1, seed: 1)
        let rgb = pattern(width: w, height: h, channels: 3, seed: 2)
        try writePNG(url("a/gray.png"), width: w, height: h, format: UInt32(PNG_FORMAT_GRAY), bytes: gray)
        try writePNG(url("a/rgb.png"), width: w, height: h, format: UInt32(PNG_FORMAT_RGB), bytes: rgb)
        try writePNG(url("b/rgb2.png"), width: w, height: h, format: UInt32(PNG_FORMAT_RGB), bytes: pattern(width: w, height: h, channels: 3, seed: 3))
        try writePNG(url("b/gray2.png"), width: w, height: h, format: UInt32(PNG_FORMAT_GRAY), bytes: gray.reversed())
        let d = try LabelledDataset.imageFolder(root: root)
        #expect(d.channels == 3 && d.count == 4 && d.labels == [0, 0, 1, 1])
        #expect(image(d, 0) == Array(repeating: planar(gray, channels: 1), count: 3).flatMap { $0 })
        #expect(image(d, 1) == planar(rgb, channels: 3))
        #expect(d.image8(at: 1) == rgb)
        // Forced to one channel: gray stays exact, colour becomes a luma in range.
        let g = try LabelledDataset.imageFolder(root: root, channels: 1)
        #expect(g.channels == 1 && image(g, 0) == planar(gray, channels: 1))
        #expect(g.pixels.allSatisfy { (0...1).contains($0) })
        expectDatasetError(containing: ["channels must be 1 or 3"]) { _ = try LabelledDataset.imageFolder(root: root, channels: 4) }
    }

    @Test func pngVariants() throws {
        let (w, h) = (3, 2)
        // Gray + alpha and RGBA: opaque pixels keep their value, transparent ones become black.
        let ga: [UInt8] = [10, 255, 200, 0, 90, 255, 30, 255, 250, 0, 60, 255]
        try writePNG(url("ga/1.png"), width: w, height: h, format: UInt32(PNG_FORMAT_GA), bytes: ga)
        var d = try LabelledDataset.imageFolder(root: root)
        #expect(d.channels == 1 && d.image8(at: 0) == [10, 0, 90, 30, 0, 60])
        try FileManager.default.removeItem(at: url("ga"))

        let rgba: [UInt8] = [1, 2, 3, 255, 200, 100, 50, 0, 9, 8, 7, 255, 40, 50, 60, 255, 255, 255, 255, 0, 70, 80, 90, 255]
        try writePNG(url("rgba/1.png"), width: w, height: h, format: UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA), bytes: rgba)
        d = try LabelledDataset.imageFolder(root: root)
        #expect(d.channels == 3 && d.image8(at: 0) == [1, 2, 3, 0, 0, 0, 9, 8, 7, 40, 50, 60, 0, 0, 0, 70, 80, 90])
        try FileManager.default.removeItem(at: url("rgba"))

        // Palette: indices into an RGB colour map.
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51]
        try writePNG(url("pal/1.png"), width: w, height: h, format: UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP),
                     bytes: [0, 1, 2, 3, 3, 0], colormap: palette, colormapEntries: 4)
        d = try LabelledDataset.imageFolder(root: root)
        let expected = [0, 1, 2, 3, 3, 0].flatMap { palette[($0 * 3)..<($0 * 3 + 3)] }
        #expect(d.channels == 3 && d.image8(at: 0) == expected)
        try FileManager.default.removeItem(at: url("pal"))

        // 16-bit (linear, with its gAMA): reduced to 8-bit sRGB, black and white exact, monotone.
        let s16: [UInt16] = [0, 1000, 8000, 20000, 40000, 65535]
        try writePNG(url("deep/1.png"), width: w, height: h, format: UInt32(PNG_FORMAT_LINEAR_Y), samples16: s16)
        d = try LabelledDataset.imageFolder(root: root)
        let v = d.image8(at: 0)
        #expect(d.channels == 1 && v.first == 0 && v.last == 255)
        #expect(zip(v, v.dropFirst()).allSatisfy { $0 < $1 }, "\(v)")
    }

    @Test func jpegs() throws {
        let (w, h) = (16, 8)
        let rgb = (0..<3).map { smooth(width: w, height: h, channels: 3, seed: $0) }
        let gray = smooth(width: w, height: h, channels: 1, seed: 4)
        try Data(jpegBytes(rgb[0], width: w, height: h, channels: 3)).write(to: url("cat/1.jpg"))
        try Data(jpegBytes(rgb[1], width: w, height: h, channels: 3)).write(to: url("cat/2.JPEG"))
        try Data(jpegBytes(rgb[2], width: w, height: h, channels: 3)).write(to: url("dog/1.jpeg"))
        try Data(jpegBytes(gray, width: w, height: h, channels: 1)).write(to: url("dog/2.jpg"))
        let d = try LabelledDataset.imageFolder(root: root)
        #expect(d.classNames == ["cat", "dog"] && d.labels == [0, 0, 1, 1])
        #expect(d.channels == 3 && d.height == h && d.width == w)
        func close(_ a: [UInt8], _ b: [UInt8]) -> Bool {
            let diffs = zip(a, b).map { abs(Int($0) - Int($1)) }
            return a.count == b.count && diffs.max()! <= 6 && Double(diffs.reduce(0, +)) / Double(diffs.count) <= 2
        }
        for i in 0..<3 { #expect(close(d.image8(at: i), rgb[i])) }
        // The gray JPEG, replicated to RGB.
        let g8 = d.image8(at: 3)
        #expect(close(g8, gray.flatMap { [$0, $0, $0] }))
        // A folder of gray JPEGs alone is one-channel.
        try FileManager.default.removeItem(at: url("cat"))
        try FileManager.default.removeItem(at: url("dog/1.jpeg"))
        let g = try LabelledDataset.imageFolder(root: root)
        #expect(g.channels == 1 && close(g.image8(at: 0), gray))
    }

    @Test func mixedPNGAndJPEG() throws {
        let (w, h) = (8, 8)
        let a = pattern(width: w, height: h, channels: 3, seed: 5)
        try writePNG(url("a/x.png"), width: w, height: h, format: UInt32(PNG_FORMAT_RGB), bytes: a)
        try Data(jpegBytes(a, width: w, height: h, channels: 3)).write(to: url("a/y.jpg"))
        // A PNG with a .jpg name is decoded by its content.
        try FileManager.default.copyItem(at: url("a/x.png"), to: url("b/z.jpg"))
        let d = try LabelledDataset.imageFolder(root: root)
        #expect(d.count == 3 && d.channels == 3)
        #expect(d.image8(at: 0) == a && d.image8(at: 2) == a)
    }

    @Test func rejectsMixedSizes() throws {
        let small = pattern(width: 4, height: 4, channels: 1, seed: 0), big = pattern(width: 5, height: 4, channels: 1, seed: 0)
        try writePNG(url("a/1.png"), width: 4, height: 4, format: UInt32(PNG_FORMAT_GRAY), bytes: small)
        try writePNG(url("b/1.png"), width: 4, height: 4, format: UInt32(PNG_FORMAT_GRAY), bytes: small)
        try writePNG(url("b/2.png"), width: 5, height: 4, format: UInt32(PNG_FORMAT_GRAY), bytes: big)
        try Data(jpegBytes(big, width: 5, height: 4, channels: 1)).write(to: url("b/3.jpg"))
        expectDatasetError(containing: [url("b/2.png").path, "5×4", url("a/1.png").path, "4×4"]) {
            _ = try LabelledDataset.imageFolder(root: root)
        }
    }

    @Test func rejectsCorruptFiles() throws {
        let px = pattern(width: 6, height: 6, channels: 3, seed: 1)
        try writePNG(url("a/good.png"), width: 6, height: 6, format: UInt32(PNG_FORMAT_RGB), bytes: px)
        let png = try Data(contentsOf: url("a/good.png")), jpg = Data(jpegBytes(px, width: 6, height: 6, channels: 3))
        let cases: [(String, Data, String)] = [
            ("b/garbage.png", Data((0..<100).map { UInt8($0) }), "signature"),
            ("b/truncated.png", png.prefix(png.count / 2), "corrupt PNG"),
            ("b/header.png", png.prefix(20), "corrupt PNG"),
            ("b/truncated.jpg", jpg.prefix(jpg.count / 2), "corrupt JPEG"),
            ("b/header.jpg", jpg.prefix(6), "corrupt JPEG"),
            ("b/empty.jpeg", Data(), "signature"),
        ]
        for (name, bytes, text) in cases {
            try bytes.write(to: url(name))
            expectDatasetError(containing: [url(name).path, text]) { _ = try LabelledDataset.imageFolder(root: root) }
            try FileManager.default.removeItem(at: url(name))
        }
        // Two bad files: the first in load order is named.
        try Data([1, 2, 3]).write(to: url("b/2.png"))
        try Data([1, 2, 3]).write(to: url("b/1.png"))
        expectDatasetError(containing: [url("b/1.png").path]) { _ = try LabelledDataset.imageFolder(root: root) }
    }

    @Test func rejectsBadLayouts() throws {
        expectDatasetError(containing: [url("missing").path, "no such directory"]) {
            _ = try LabelledDataset.imageFolder(root: url("missing"))
        }
        try Data().write(to: url("loose.png"))
        expectDatasetError(containing: [root.path, "no class subdirectories"]) { _ = try LabelledDataset.imageFolder(root: root) }
        try writePNG(url("a/1.png"), width: 2, height: 2, format: UInt32(PNG_FORMAT_GRAY), bytes: [1, 2, 3, 4])
        try Data("x".utf8).write(to: url("b/readme.txt"))
        expectDatasetError(containing: [url("b").path, "no .png/.jpg/.jpeg images"]) { _ = try LabelledDataset.imageFolder(root: root) }
    }

    @Test func manyFilesInParallel() throws {
        // Enough files for every worker; order and pixels must not depend on the threads.
        var expected: [(label: Int, pixels: [UInt8])] = []
        for c in 0..<3 {
            for i in 0..<70 {
                let px = pattern(width: 8, height: 8, channels: 3, seed: c * 100 + i)
                let name = String(format: "class%d/img%03d", c, i)
                if i % 2 == 0 {
                    try writePNG(url(name + ".png"), width: 8, height: 8, format: UInt32(PNG_FORMAT_RGB), bytes: px)
                } else {
                    try Data(jpegBytes(px, width: 8, height: 8, channels: 3)).write(to: url(name + ".jpg"))
                }
                expected.append((c, px))
            }
        }
        let d = try LabelledDataset.imageFolder(root: root)
        #expect(d.count == 210 && d.labels == expected.map(\.label))
        for i in stride(from: 0, to: 210, by: 2) { #expect(d.image8(at: i) == expected[i].pixels) }
        let again = try LabelledDataset.imageFolder(root: root)
        #expect(again.pixels == d.pixels)
    }
}
