import Foundation

/// The on-disk layouts ``DatasetSource`` reads.
public enum DatasetFormat: String, CaseIterable, Sendable, Codable {
    /// MNIST-style IDX files: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each optionally `.gz`.
    case idx
    /// The CIFAR-10 binary distribution: `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`
    /// (in the directory or in its `cifar-10-batches-bin/`).
    case cifar10
    /// The CIFAR-100 binary distribution: `train.bin`, `test.bin` (in the directory or in its
    /// `cifar-100-binary/`); fine labels.
    case cifar100
    /// Class folders of PNG/JPEG images: `root/<class>/*`, or `root/train/<class>/*` and
    /// `root/test/<class>/*`.
    case imageFolder = "imagefolder"
}

/// A labelled image dataset on disk, its format detected from what is there (or named), with
/// a training and a test split.
///
/// ```swift
/// let source = try DatasetSource(path: URL(fileURLWithPath: "data/cifar-10-batches-bin"))
/// let train = try source.load(.train), test = try source.load(.test)
/// ```
///
/// An image folder without `train/` and `test/` is split here: a seeded, class-stratified
/// ``testFraction`` of it is the test split (the same images for the same folder and seed).
public struct DatasetSource: Sendable, CustomStringConvertible {
    /// Which part of the data.
    public enum Split: String, Sendable, CaseIterable { case train, test }

    /// The directory given.
    public let path: URL
    /// Its format.
    public let format: DatasetFormat
    /// Share of a single image folder held out as the test split.
    public var testFraction = 0.2
    /// Seed of that split.
    public var splitSeed: UInt64 = 0

    /// Debian's Fashion-MNIST (`dataset-fashion-mnist`), the default dataset.
    public static var fashionMNIST: DatasetSource { DatasetSource(path: ImageDataset.fashionMNISTDirectory, format: .idx) }

    /// A source whose format is given.
    public init(path: URL, format: DatasetFormat) {
        self.path = path; self.format = format
    }

    /// A source whose format is `format`, or detected from the directory's contents when nil.
    /// Throws a ``DatasetError`` naming what was looked for and what was found.
    public init(path: URL, format: DatasetFormat? = nil) throws {
        self.path = path
        if let format { self.format = format; return }
        self.format = try Self.detect(path)
    }

    public var description: String { "\(path.path) (\(format.rawValue))" }

    /// Reads one split.
    public func load(_ split: Split) throws -> ImageDataset {
        let train = split == .train
        switch format {
        case .idx:
            let d = try ImageDataset.fashionMNIST(train: train, directory: path)
            return d
        case .cifar10: return try ImageDataset.cifar10(directory: path, train: train)
        case .cifar100: return try ImageDataset.cifar100(directory: path, train: train)
        case .imageFolder:
            let fm = FileManager.default
            let splitDir = path.appendingPathComponent(split.rawValue, isDirectory: true)
            if Self.isDirectory(path.appendingPathComponent("train")) {
                guard Self.isDirectory(splitDir) else {
                    throw DatasetError("\(path.path): has train/ but no \(split.rawValue)/ (an image folder is root/<class>/* or root/train/<class>/* + root/test/<class>/*)")
                }
                let d = try ImageDataset.imageFolder(root: splitDir)
                if split == .test {
                    // The test classes must be the training classes, in the same order.
                    let trainClasses = try fm.contentsOfDirectory(atPath: path.appendingPathComponent("train").path)
                        .filter { !$0.hasPrefix(".") && Self.isDirectory(path.appendingPathComponent("train/\($0)")) }.sorted()
                    guard d.classNames == trainClasses else {
                        throw DatasetError("\(splitDir.path): classes \(d.classNames) differ from train/'s \(trainClasses)")
                    }
                }
                return d
            }
            let all = try ImageDataset.imageFolder(root: path)
            let (train, test) = all.split(validationFraction: testFraction, seed: splitSeed)
            return split == .train ? train : test
        }
    }

    static func isDirectory(_ url: URL) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && d.boolValue
    }

    /// The format of the directory at `path`, from the files it holds.
    public static func detect(_ path: URL) throws -> DatasetFormat {
        let fm = FileManager.default
        guard isDirectory(path) else {
            throw DatasetError(fm.fileExists(atPath: path.path)
                ? "\(path.path): a dataset is a directory, not a file"
                : "\(path.path): no such directory")
        }
        func has(_ name: String) -> Bool { fm.fileExists(atPath: path.appendingPathComponent(name).path) }
        if has("train-images-idx3-ubyte") || has("train-images-idx3-ubyte.gz")
            || has("t10k-images-idx3-ubyte") || has("t10k-images-idx3-ubyte.gz") {
            return .idx
        }
        if has("data_batch_1.bin") || has("cifar-10-batches-bin/data_batch_1.bin") { return .cifar10 }
        if has("train.bin") || has("cifar-100-binary/train.bin") { return .cifar100 }
        let entries = ((try? fm.contentsOfDirectory(atPath: path.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        if entries.contains(where: { isDirectory(path.appendingPathComponent($0)) }) { return .imageFolder }
        let shown = entries.prefix(8).joined(separator: ", ") + (entries.count > 8 ? ", … (\(entries.count) entries)" : "")
        throw DatasetError("""
            \(path.path): no dataset found. Looked for IDX files (train-images-idx3-ubyte[.gz]), CIFAR-10 \
            batches (data_batch_1.bin), CIFAR-100 (train.bin) and class folders of images (root/<class>/*.png); \
            found \(entries.isEmpty ? "an empty directory" : shown)
            """)
    }
}
