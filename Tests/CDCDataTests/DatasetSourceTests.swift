import CDCData
import CPNG
import Foundation
import Testing

/// Format detection and the splits of ``DatasetSource``, on tiny datasets written here.
@Suite final class DatasetSourceTests {
    let dir = makeTemporaryDirectory("cdc-source")
    deinit { try? FileManager.default.removeItem(at: dir) }

    func folder(_ path: String) throws -> URL {
        let u = dir.appendingPathComponent(path, isDirectory: true)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// `count` 8×8 RGB PNGs in `root/<class>/`, class `c` brightest in channel `c`.
    func writeClasses(_ root: URL, classes: [String], count: Int, size: Int = 8) throws {
        for (c, name) in classes.enumerated() {
            let d = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            for i in 0..<count {
                let px = (0..<(size * size * 3)).map { k in UInt8(k % 3 == c % 3 ? 200 : (i * 13 + k) % 60) }
                try writePNG(d.appendingPathComponent("\(i).png"), width: size, height: size, format: UInt32(PNG_FORMAT_RGB), bytes: px)
            }
        }
    }

    @Test func detectsEveryFormat() throws {
        let idx = try folder("idx")
        FileManager.default.createFile(atPath: idx.appendingPathComponent("train-images-idx3-ubyte.gz").path, contents: Data())
        #expect(try DatasetSource.detect(idx) == .idx)
        let c10 = try folder("c10/cifar-10-batches-bin")
        FileManager.default.createFile(atPath: c10.appendingPathComponent("data_batch_1.bin").path, contents: Data())
        #expect(try DatasetSource.detect(dir.appendingPathComponent("c10")) == .cifar10)
        let c100 = try folder("c100")
        FileManager.default.createFile(atPath: c100.appendingPathComponent("train.bin").path, contents: Data())
        #expect(try DatasetSource.detect(c100) == .cifar100)
        let images = try folder("images")
        try writeClasses(images, classes: ["a", "b"], count: 1)
        #expect(try DatasetSource.detect(images) == .imageFolder)
        // The format can be named instead.
        #expect(try DatasetSource(path: images, format: .cifar10).format == .cifar10)
    }

    @Test func refusesWhatIsNoDataset() throws {
        let empty = try folder("empty")
        expectDatasetError(containing: ["empty", "no dataset found", "IDX", "CIFAR-10", "class folders", "an empty directory"]) {
            _ = try DatasetSource(path: empty)
        }
        let loose = try folder("loose")
        FileManager.default.createFile(atPath: loose.appendingPathComponent("notes.txt").path, contents: Data("x".utf8))
        expectDatasetError(containing: ["no dataset found", "found notes.txt"]) { _ = try DatasetSource(path: loose) }
        expectDatasetError(containing: ["missing", "no such directory"]) { _ = try DatasetSource(path: dir.appendingPathComponent("missing")) }
        expectDatasetError(containing: ["not a file"]) {
            _ = try DatasetSource(path: loose.appendingPathComponent("notes.txt"))
        }
        // A named format that is not there fails when loaded, naming the file looked for.
        expectDatasetError(containing: ["data_batch_1.bin"]) { _ = try DatasetSource(path: loose, format: .cifar10).load(.train, order: .files) }
    }

    @Test func imageFolderWithTrainAndTest() throws {
        let root = try folder("split")
        try writeClasses(root.appendingPathComponent("train"), classes: ["cat", "dog", "eel"], count: 3)
        try writeClasses(root.appendingPathComponent("test"), classes: ["cat", "dog", "eel"], count: 2)
        let source = try DatasetSource(path: root)
        let train = try source.load(.train, order: .files), test = try source.load(.test, order: .files)
        #expect(train.count == 9 && test.count == 6)
        #expect(train.channels == 3 && train.height == 8 && train.width == 8 && train.classNames == ["cat", "dog", "eel"])
        #expect(test.labels == [0, 0, 1, 1, 2, 2])
        // Test classes that differ from the training classes are refused.
        try FileManager.default.removeItem(at: root.appendingPathComponent("test/eel"))
        expectDatasetError(containing: ["test", "classes"]) { _ = try source.load(.test, order: .files) }
    }

    @Test func singleImageFolderIsSplitStratifiedAndSeeded() throws {
        let root = try folder("single")
        try writeClasses(root, classes: ["a", "b"], count: 10)
        let source = try DatasetSource(path: root)
        let train = try source.load(.train, order: .files), test = try source.load(.test, order: .files)
        #expect(train.count == 16 && test.count == 4)
        #expect(test.labels.filter { $0 == 0 }.count == 2)
        // Disjoint, and the same split every time.
        let trainImages = Set((0..<train.count).map { train.image8(at: $0) })
        #expect((0..<test.count).allSatisfy { !trainImages.contains(test.image8(at: $0)) })
        #expect(try source.load(.test, order: .files).pixels == test.pixels)
    }

    @Test func badImagesAreNamed() throws {
        let root = try folder("bad")
        try writeClasses(root, classes: ["a", "b"], count: 2)
        // An unreadable image names the file.
        try Data("not a png".utf8).write(to: root.appendingPathComponent("b/broken.png"))
        expectDatasetError(containing: ["broken.png"]) { _ = try DatasetSource(path: root).load(.train, order: .files) }
        try FileManager.default.removeItem(at: root.appendingPathComponent("b/broken.png"))
        // Mixed sizes name both files.
        try writePNG(root.appendingPathComponent("a/big.png"), width: 12, height: 12, format: UInt32(PNG_FORMAT_RGB),
                     bytes: [UInt8](repeating: 9, count: 12 * 12 * 3))
        expectDatasetError(containing: ["big.png", "12×12", "same size"]) { _ = try DatasetSource(path: root).load(.train, order: .files) }
        try FileManager.default.removeItem(at: root.appendingPathComponent("a/big.png"))
        // An empty class folder is named.
        _ = try folder("bad/c")
        expectDatasetError(containing: ["bad/c", "no .png"]) { _ = try DatasetSource(path: root).load(.train, order: .files) }
    }
}

/// Layouts read file by file come back shuffled (seeded) so that a prefix holds every class.
@Suite struct SampleOrderTests {
    @Test func folderLayoutsAreShuffledTheSameWayEveryTime() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-order-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        // Four classes of 8 tiny gray PNGs, split 80/20 by the source.
        for c in 0..<4 {
            let dir = root.appendingPathComponent("class\(c)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for i in 0..<8 {
                try writePNG(dir.appendingPathComponent("\(i).png"), width: 4, height: 4, format: UInt32(PNG_FORMAT_GRAY),
                             bytes: [UInt8](repeating: UInt8(c * 60 + i), count: 16))
            }
        }
        let source = try DatasetSource(path: root)
        let files = try source.load(.train, order: .files), shuffled = try source.load(.train)
        #expect(files.labels == files.labels.sorted())
        #expect(shuffled.labels.sorted() == files.labels.sorted())
        #expect(shuffled.labels != files.labels)
        #expect(Set(shuffled.prefix(8).labels).count >= 2)   // a prefix is not one class
        #expect(try source.load(.train).pixels == shuffled.pixels)
    }
}
