import CDCData
import Foundation
import Testing

/// The IDX loader on tiny files written here (raw and gzip-compressed) and on broken ones.
@Suite struct IDXTests {
    let dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-idx-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    func idx(_ dims: [Int], _ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return out + data
    }

    func write(_ name: String, _ bytes: [UInt8], gzip: Bool = false) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        if gzip {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/gzip")
            p.arguments = ["-f", url.path]
            try p.run(); p.waitUntilExit()
            return dir.appendingPathComponent(name + ".gz")
        }
        return url
    }

    @Test(arguments: [false, true])
    func readsImagesAndLabels(gzip: Bool) throws {
        let pixels: [UInt8] = (0..<(3 * 2 * 4)).map { UInt8($0 * 10) }
        let images = try write("train-images-idx3-ubyte", idx([3, 2, 4], pixels), gzip: gzip)
        let labels = try write("train-labels-idx1-ubyte", idx([3], [7, 0, 9]), gzip: gzip)
        let d = try LabelledDataset.idx(images: images, labels: labels)
        #expect(d.count == 3 && d.height == 2 && d.width == 4 && d.channels == 1)
        #expect(d.labels == [7, 0, 9])
        #expect(d.pixels == pixels.map { Float($0) / 255 })
        // The Fashion-MNIST entry point finds the files in a directory (gz or not).
        _ = try write("t10k-images-idx3-ubyte", idx([1, 2, 4], Array(pixels[0..<8])), gzip: gzip)
        _ = try write("t10k-labels-idx1-ubyte", idx([1], [4]), gzip: gzip)
        let test = try LabelledDataset.fashionMNIST(train: false, directory: dir)
        #expect(test.labels == [4])
        // Seeded batches are a permutation of the data, repeatable.
        let b1 = d.batches(size: 2, shuffle: 5), b2 = d.batches(size: 2, shuffle: 5)
        #expect(b1.map(\.1) == b2.map(\.1))
        #expect(b1.flatMap(\.1).sorted() == [0, 7, 9])
        #expect(d.batches(size: 2, shuffle: nil, dropLast: true).count == 1)
    }

    func expectError(_ images: [UInt8], _ labels: [UInt8], containing text: String) throws {
        let i = try write("i-\(UUID().uuidString)", images), l = try write("l-\(UUID().uuidString)", labels)
        do {
            _ = try LabelledDataset.idx(images: i, labels: l)
            Issue.record("expected an error containing '\(text)'")
        } catch let e as DatasetError {
            #expect(e.description.contains(text), "\(e.description)")
        }
    }

    @Test func rejectsBrokenFiles() throws {
        let good = idx([2, 2, 2], [UInt8](repeating: 1, count: 8)), labels = idx([2], [1, 2])
        try expectError(Array(good.dropLast(3)), labels, containing: "header promises 8 bytes")       // truncated
        try expectError([1, 2] + good.dropFirst(2), labels, containing: "bad magic")
        try expectError(good, idx([3], [1, 2, 3]), containing: "has 2 images but")
        try expectError([0, 0, 0x0D, 3] + good.dropFirst(4), labels, containing: "not unsigned bytes")
        try expectError([0, 0], labels, containing: "shorter than an IDX header")
        do {
            _ = try LabelledDataset.idx(images: dir.appendingPathComponent("missing"), labels: dir.appendingPathComponent("missing"))
            Issue.record("expected an error")
        } catch let e as DatasetError {
            #expect(e.description.contains("no such file"))
        }
    }
}
