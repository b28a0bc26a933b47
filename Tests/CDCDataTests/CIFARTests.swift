import CDCData
import Foundation
import Testing

/// Temporary directory for one test suite's files.
func makeTemporaryDirectory(_ prefix: String) -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

/// Expects `body` to throw a `DatasetError` whose message contains every one of `texts`.
func expectDatasetError(containing texts: [String], _ body: () throws -> Void,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        try body()
        Issue.record("expected an error containing \(texts)", sourceLocation: sourceLocation)
    } catch let e as DatasetError {
        for t in texts { #expect(e.description.contains(t), "\(e.description)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("expected a DatasetError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// The CIFAR-10 and CIFAR-100 binary readers on tiny batches written here.
@Suite final class CIFARTests {
    let dir = makeTemporaryDirectory("cdc-cifar")
    deinit { try? FileManager.default.removeItem(at: dir) }

    /// The pixel bytes of record `r`: R, G, B planes of 32×32.
    func recordPixels(_ r: Int) -> [UInt8] { (0..<3072).map { UInt8(truncatingIfNeeded: $0 * 7 + r * 31 + $0 / 1024) } }

    func write(_ name: String, _ bytes: [UInt8], in directory: URL? = nil) throws -> URL {
        let d = directory ?? dir
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        let url = d.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Records with the given label bytes each, pixels from `recordPixels(first + i)`.
    func records(_ labels: [[UInt8]], first: Int = 0) -> [UInt8] {
        labels.enumerated().flatMap { i, l in l + recordPixels(first + i) }
    }

    @Test func cifar10RoundTrip() throws {
        // Three records over two files, concatenated in order.
        let a = try write("data_batch_1.bin", records([[3], [0]]))
        let b = try write("other.bin", records([[9]], first: 2))
        let d = try LabelledDataset.cifar10(files: [a, b])
        #expect(d.count == 3 && d.channels == 3 && d.height == 32 && d.width == 32 && d.classes == 10)
        #expect(d.labels == [3, 0, 9])
        #expect(d.classNames.isEmpty)
        for r in 0..<3 { #expect(Array(d.pixels[(r * 3072)..<((r + 1) * 3072)]) == recordPixels(r).map { Float($0) / 255 }) }
        // HWC view: the R, G, B planes interleaved.
        let hwc = d.image8(at: 1), px = recordPixels(1)
        #expect(hwc.count == 3072)
        let planes: [UInt8] = (0..<3072).map { (i: Int) -> UInt8 in px[(i % 3) * 1024 + i / 3] }
        #expect(hwc == planes)
    }

    @Test func cifar10Directory() throws {
        let sub = dir.appendingPathComponent("cifar-10-batches-bin")
        for i in 1...5 { _ = try write("data_batch_\(i).bin", records([[UInt8(i)]], first: i), in: sub) }
        _ = try write("test_batch.bin", records([[7], [8]]), in: sub)
        let names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        try Data((names.joined(separator: "\n") + "\n\n").utf8).write(to: sub.appendingPathComponent("batches.meta.txt"))
        // Either the batches directory or its parent.
        for d in [sub, dir] {
            let train = try LabelledDataset.cifar10(directory: d, train: true)
            #expect(train.labels == [1, 2, 3, 4, 5])
            #expect(Array(train.pixels[0..<3072]) == recordPixels(1).map { Float($0) / 255 })
            #expect(train.classNames == names)
            let test = try LabelledDataset.cifar10(directory: d, train: false)
            #expect(test.labels == [7, 8])
        }
        expectDatasetError(containing: ["data_batch_1.bin", "no such file"]) {
            _ = try LabelledDataset.cifar10(directory: dir.appendingPathComponent("nowhere"), train: true)
        }
    }

    @Test(arguments: [CIFAR100Labels.fine, .coarse])
    func cifar100RoundTrip(labels kind: CIFAR100Labels) throws {
        // Label bytes: coarse, then fine.
        let bytes = records([[19, 99], [0, 5], [7, 42]])
        let url = try write("batch.bin", bytes)
        let d = try LabelledDataset.cifar100(files: [url], labels: kind)
        #expect(d.count == 3 && d.channels == 3 && d.height == 32 && d.width == 32)
        #expect(d.labels == (kind == .fine ? [99, 5, 42] : [19, 0, 7]))
        #expect(d.classes == (kind == .fine ? 100 : 20))
        for r in 0..<3 { #expect(Array(d.pixels[(r * 3072)..<((r + 1) * 3072)]) == recordPixels(r).map { Float($0) / 255 }) }
        // Directory form, in the tarball's subdirectory, with label names.
        let sub = dir.appendingPathComponent("cifar-100-binary")
        _ = try write("train.bin", bytes, in: sub)
        _ = try write("test.bin", records([[1, 2]]), in: sub)
        let coarse = (0..<20).map { "super\($0)" }, fine = (0..<100).map { "class\($0)" }
        try Data(coarse.joined(separator: "\n").utf8).write(to: sub.appendingPathComponent("coarse_label_names.txt"))
        try Data(fine.joined(separator: "\n").utf8).write(to: sub.appendingPathComponent("fine_label_names.txt"))
        let train = try LabelledDataset.cifar100(directory: dir, train: true, labels: kind)
        #expect(train.labels == d.labels && train.pixels == d.pixels)
        #expect(train.classNames == (kind == .fine ? fine : coarse))
        let test = try LabelledDataset.cifar100(directory: sub, train: false, labels: kind)
        #expect(test.labels == [kind == .fine ? 2 : 1])
    }

    @Test func rejectsBrokenFiles() throws {
        let good = records([[1], [2], [3]])
        let truncated = try write("truncated.bin", Array(good.dropLast()))
        expectDatasetError(containing: [truncated.path, "9218 bytes", "3073"]) { _ = try LabelledDataset.cifar10(files: [truncated]) }
        let empty = try write("empty.bin", [])
        expectDatasetError(containing: [empty.path, "empty"]) { _ = try LabelledDataset.cifar10(files: [empty]) }
        // A CIFAR-10 file read as CIFAR-100 is 3 × 3073 bytes: not whole 3074-byte records.
        let ten = try write("ten.bin", good)
        expectDatasetError(containing: [ten.path, "3074"]) { _ = try LabelledDataset.cifar100(files: [ten]) }
        let badLabel = try write("label.bin", records([[1], [10]]))
        expectDatasetError(containing: [badLabel.path, "record 1", "label 10"]) { _ = try LabelledDataset.cifar10(files: [badLabel]) }
        let badCoarse = try write("coarse.bin", records([[20, 3]]))
        expectDatasetError(containing: [badCoarse.path, "label 20"]) { _ = try LabelledDataset.cifar100(files: [badCoarse], labels: .coarse) }
        let badFine = try write("fine.bin", records([[2, 100]]))
        expectDatasetError(containing: [badFine.path, "label 100"]) { _ = try LabelledDataset.cifar100(files: [badFine], labels: .fine) }
        // Fine labels < 100 are valid even above 20 when reading fine labels.
        #expect(try LabelledDataset.cifar100(files: [try write("ok.bin", records([[19, 80]]))]).labels == [80])
        expectDatasetError(containing: ["missing.bin", "no such file"]) {
            _ = try LabelledDataset.cifar10(files: [dir.appendingPathComponent("missing.bin")])
        }
    }
}
