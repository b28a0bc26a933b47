import CDCTensor
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
    /// The Free Spoken Digit Dataset: one flat folder (or its `recordings/`) of
    /// `{digit}_{speaker}_{index}.wav`; takes 0–4 are the test split.
    case fsdd
    /// UrbanSound8K: `audio/fold1` … `audio/fold10` and `metadata/UrbanSound8K.csv`; folds 1–8
    /// train, 9–10 test unless ``DatasetSource/AudioOptions`` says otherwise.
    case urbansound8k
    /// Class folders of audio files (WAV, FLAC, Ogg, …): `root/<class>/*`, or
    /// `root/train/<class>/*` and `root/test/<class>/*`.
    case audioFolder = "audiofolder"

    /// True for the formats of audio clips.
    public var isAudio: Bool { self == .fsdd || self == .urbansound8k || self == .audioFolder }
}

/// A labelled dataset of images or audio clips on disk, its format detected from what is there
/// (or named), with a training and a test split.
///
/// ```swift
/// let source = try DatasetSource(path: URL(fileURLWithPath: "data/cifar-10-batches-bin"))
/// let train = try source.load(.train), test = try source.load(.test)
/// ```
///
/// An image or audio folder without `train/` and `test/` is split here: a seeded,
/// class-stratified ``testFraction`` of it is the test split (the same samples for the same
/// folder and seed). Audio clips are shaped by ``audio`` (sample rate, clip length, folds).
public struct DatasetSource: Sendable, CustomStringConvertible {
    /// Which part of the data.
    public enum Split: String, Sendable, CaseIterable { case train, test }

    /// How audio datasets are read: every clip becomes `length` mono samples at `sampleRate`
    /// (see ``AudioFile/clip(_:sampleRate:length:)``); UrbanSound8K's folds per split.
    public struct AudioOptions: Sendable, Equatable, Codable {
        /// Samples per second the clips are resampled to.
        public var sampleRate = 8000
        /// Samples per clip (zero-padded at the end or cropped around the loudest second).
        public var length = 8000
        /// UrbanSound8K folds of the training split; nil: the folds not in ``testFolds`` when
        /// those are given, else 1–8.
        public var trainFolds: [Int]? = nil
        /// UrbanSound8K folds of the test split; nil: the folds not in ``trainFolds`` when
        /// those are given, else 9–10.
        public var testFolds: [Int]? = nil

        /// Options with the given values (8 kHz, 8 000 samples, default folds unless given).
        public init(sampleRate: Int = 8000, length: Int = 8000, trainFolds: [Int]? = nil, testFolds: [Int]? = nil) {
            self.sampleRate = sampleRate; self.length = length; self.trainFolds = trainFolds; self.testFolds = testFolds
        }

        /// UrbanSound8K's folds for `split`; overlapping explicit folds are refused.
        public func folds(_ split: Split) throws -> [Int] {
            let all = Array(1...10)
            let train = trainFolds ?? testFolds.map { t in all.filter { !t.contains($0) } } ?? LabelledDataset.urbanSound8KTrainFolds
            let test = testFolds ?? trainFolds.map { t in all.filter { !t.contains($0) } } ?? LabelledDataset.urbanSound8KTestFolds
            let both = Set(train).intersection(test)
            guard both.isEmpty else {
                throw DatasetError("UrbanSound8K folds \(both.sorted().map(String.init).joined(separator: ", ")) are in both the training and the test split")
            }
            return split == .train ? train : test
        }
    }

    /// The directory given.
    public let path: URL
    /// Its format.
    public let format: DatasetFormat
    /// Share of a single image folder held out as the test split.
    public var testFraction = 0.2
    /// Seed of that split.
    public var splitSeed: UInt64 = 0
    /// Sample rate, clip length and folds of audio datasets.
    public var audio = AudioOptions()

    /// Debian's Fashion-MNIST (`dataset-fashion-mnist`), the default dataset.
    public static var fashionMNIST: DatasetSource { DatasetSource(path: LabelledDataset.fashionMNISTDirectory, format: .idx) }

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
    ///
    /// Layouts read file by file (image and audio folders, FSDD, UrbanSound8K) list their samples
    /// class by class; they come back in a seeded shuffled order (``splitSeed``), so that a prefix
    /// (`--subset`) or a held-out tail holds every class. IDX and CIFAR keep their files' order.
    public func load(_ split: Split) throws -> LabelledDataset {
        try load(split, order: .shuffled)
    }

    /// The order of the samples of a loaded split.
    public enum SampleOrder: Sendable {
        /// As ``load(_:)`` returns them: seeded shuffled for layouts read file by file.
        case shuffled
        /// The order of the files (sorted names, class by class).
        case files
    }

    /// Reads one split in the given order.
    public func load(_ split: Split, order: SampleOrder) throws -> LabelledDataset {
        let d = try loadInFileOrder(split)
        if order == .files { return d }
        switch format {
        case .idx, .cifar10, .cifar100: return d
        case .imageFolder, .audioFolder, .fsdd, .urbansound8k:
            var order = Array(0..<d.count)
            var g = SeededGenerator(seed: splitSeed &+ (split == .train ? 0x5eed : 0x7e57))
            order.shuffle(using: &g)
            return d.subset(order)
        }
    }

    /// One split in the order of the files.
    func loadInFileOrder(_ split: Split) throws -> LabelledDataset {
        let train = split == .train
        switch format {
        case .idx:
            let d = try LabelledDataset.fashionMNIST(train: train, directory: path)
            return d
        case .cifar10: return try LabelledDataset.cifar10(directory: path, train: train)
        case .cifar100: return try LabelledDataset.cifar100(directory: path, train: train)
        case .imageFolder:
            return try classFolders(split, kind: "an image folder") { try LabelledDataset.imageFolder(root: $0) }
        case .audioFolder:
            let (rate, length) = (audio.sampleRate, audio.length)
            return try classFolders(split, kind: "an audio folder") {
                try LabelledDataset.audioFolder(root: $0, sampleRate: rate, length: length)
            }
        case .fsdd:
            return try LabelledDataset.fsdd(directory: path, train: train, sampleRate: audio.sampleRate, length: audio.length)
        case .urbansound8k:
            let folds: [Int]
            do { folds = try audio.folds(split) } catch let e as DatasetError { throw DatasetError("\(path.path): \(e.description)") }
            return try LabelledDataset.urbanSound8K(directory: path, folds: folds, sampleRate: audio.sampleRate, length: audio.length)
        }
    }

    /// One split of class folders read by `read`: `root/<split>/` when `root/train/` exists
    /// (the test classes must be the training classes), else the seeded stratified split of `root`.
    func classFolders(_ split: Split, kind: String, read: (URL) throws -> LabelledDataset) throws -> LabelledDataset {
        let fm = FileManager.default
        let splitDir = path.appendingPathComponent(split.rawValue, isDirectory: true)
        if Self.isDirectory(path.appendingPathComponent("train")) {
            guard Self.isDirectory(splitDir) else {
                throw DatasetError("\(path.path): has train/ but no \(split.rawValue)/ (\(kind) is root/<class>/* or root/train/<class>/* + root/test/<class>/*)")
            }
            let d = try read(splitDir)
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
        let all = try read(path)
        let (train, test) = all.split(validationFraction: testFraction, seed: splitSeed)
        return split == .train ? train : test
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
        if has("metadata/UrbanSound8K.csv") || has("UrbanSound8K/metadata/UrbanSound8K.csv") { return .urbansound8k }
        let entries = ((try? fm.contentsOfDirectory(atPath: path.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        if isFSDD(LabelledDataset.fsddRecordings(path)) { return .fsdd }
        if entries.contains(where: { isDirectory(path.appendingPathComponent($0)) }) {
            return firstMediaFile(below: path).map { AudioFile.extensions.contains($0) } == true ? .audioFolder : .imageFolder
        }
        let shown = entries.prefix(8).joined(separator: ", ") + (entries.count > 8 ? ", … (\(entries.count) entries)" : "")
        throw DatasetError("""
            \(path.path): no dataset found. Looked for IDX files (train-images-idx3-ubyte[.gz]), CIFAR-10 \
            batches (data_batch_1.bin), CIFAR-100 (train.bin), UrbanSound8K (metadata/UrbanSound8K.csv), \
            FSDD recordings ({digit}_{speaker}_{index}.wav in one folder), class folders of images \
            (root/<class>/*.png) and class folders of audio (root/<class>/*.wav|flac|ogg); \
            found \(entries.isEmpty ? "an empty directory" : shown)
            """)
    }

    /// True when `dir` directly holds audio files and every one is named like FSDD's
    /// `{digit}_{speaker}_{index}.wav`.
    static func isFSDD(_ dir: URL) -> Bool {
        let audio = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [])
            .filter { !$0.hasPrefix(".") && AudioFile.extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
        return !audio.isEmpty && audio.allSatisfy { LabelledDataset.fsddName($0) != nil }
    }

    /// The lower-cased extension of the first image or audio file (by ``LabelledDataset/imageFolderExtensions``
    /// and ``AudioFile/extensions``) below `root`, depth first in sorted order (a directory's files
    /// before its subdirectories), hidden entries skipped; nil when there is none.
    static func firstMediaFile(below root: URL) -> String? {
        let known = LabelledDataset.imageFolderExtensions.union(AudioFile.extensions)
        func search(_ dir: URL, depth: Int) -> String? {
            guard depth < 16 else { return nil }
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            var subdirectories: [URL] = []
            for name in names {
                let url = dir.appendingPathComponent(name)
                if isDirectory(url) { subdirectories.append(url); continue }
                let ext = url.pathExtension.lowercased()
                if known.contains(ext) { return ext }
            }
            for sub in subdirectories { if let found = search(sub, depth: depth + 1) { return found } }
            return nil
        }
        return search(root, depth: 0)
    }
}
