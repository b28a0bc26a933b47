import CDCData
import CSndFile
import Foundation
import Testing

/// The audio dataset layouts (FSDD, UrbanSound8K, audio class folders) and their detection,
/// on tiny clips written here.
@Suite final class AudioDatasetTests {
    let dir = makeTemporaryDirectory("cdc-audio-sets")
    deinit { try? FileManager.default.removeItem(at: dir) }

    func folder(_ path: String) throws -> URL {
        let u = dir.appendingPathComponent(path, isDirectory: true)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// A short constant clip whose value `v` identifies it (16-bit, 8 kHz unless said).
    func writeClip(_ url: URL, value v: Float, count: Int = 100, rate: Int = 8000, channels: Int = 1) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeWAV(url, samples: [Float](repeating: v, count: count * channels), channels: channels, rate: rate)
    }

    /// The first sample of every clip of `d`.
    func firstSamples(_ d: LabelledDataset) -> [Float] { (0..<d.count).map { d.pixels[$0 * d.sampleSize] } }

    @Test func fsddSplitsByTakeAndNamesDigits() throws {
        let root = try folder("fsdd")
        for digit in [0, 1, 9] {
            for take in [0, 4, 5, 7] {
                try writeClip(root.appendingPathComponent("\(digit)_jackson_\(take).wav"), value: Float(digit * 10 + take) / 128)
            }
        }
        try Data("notes".utf8).write(to: root.appendingPathComponent("README.md"))
        #expect(try DatasetSource.detect(root) == .fsdd)
        var source = try DatasetSource(path: root)
        source.audio = .init(sampleRate: 8000, length: 160)
        let train = try source.load(.train, order: .files), test = try source.load(.test, order: .files)
        #expect(train.labels == [0, 0, 1, 1, 9, 9] && test.labels == [0, 0, 1, 1, 9, 9])
        #expect(train.classes == 10 && train.classNames == (0...9).map(String.init))
        #expect(train.sampleRate == 8000 && train.sampleShape == [1, 160] && train.isAudio)
        // Sorted file names: takes 5, 7 train; 0, 4 test. Clips are padded with zeros at the end.
        #expect(firstSamples(train) == [5, 7, 15, 17, 95, 97].map { Float($0) / 128 })
        #expect(firstSamples(test) == [0, 4, 10, 14, 90, 94].map { Float($0) / 128 })
        #expect(train.pixels[99] == 5 / 128 && train.pixels[100..<160].allSatisfy { $0 == 0 })
        // In a checkout's recordings/ folder too.
        let checkout = try folder("fsdd-checkout")
        try FileManager.default.copyItem(at: root, to: checkout.appendingPathComponent("recordings"))
        #expect(try DatasetSource.detect(checkout) == .fsdd)
        #expect(try LabelledDataset.fsdd(directory: checkout, train: false, length: 100).count == 6)
        // A clip named otherwise is not FSDD, and is named when FSDD is asked for.
        try writeClip(root.appendingPathComponent("hello.wav"), value: 0.1)
        #expect((try? DatasetSource.detect(root)) == nil)
        expectDatasetError(containing: ["hello.wav", "FSDD"]) { _ = try DatasetSource(path: root, format: .fsdd).load(.train, order: .files) }
        #expect(LabelledDataset.fsddName("3_jackson_12.wav")! == (3, "jackson", 12))
        #expect(LabelledDataset.fsddName("12_jackson_1.wav") == nil && LabelledDataset.fsddName("3_jackson_x.wav") == nil)
    }

    /// An UrbanSound8K tree: one 16 kHz stereo clip per fold (class = fold mod 3), the
    /// metadata's columns in another order than the original's.
    func writeUrbanSound(_ root: URL, header: String = "fsID,slice_file_name,start,end,salience,fold,class,classID") throws {
        let names = ["air_conditioner", "car_horn", "children_playing"]
        var csv = header + "\n"
        for fold in 1...10 {
            let id = fold % 3, name = "\(100 + fold)-0-0-\(fold).wav"
            try writeClip(root.appendingPathComponent("audio/fold\(fold)/\(name)"), value: Float(fold) / 64, count: 200,
                          rate: 16000, channels: 2)
            let row = ["fsID": "\(100 + fold)", "slice_file_name": name, "start": "0", "end": "0.0125", "salience": "1",
                       "fold": "\(fold)", "class": names[id], "classID": "\(id)"]
            csv += header.split(separator: ",").map { row[String($0)] ?? "" }.joined(separator: ",") + "\n"
        }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("metadata"), withIntermediateDirectories: true)
        try csv.write(to: root.appendingPathComponent("metadata/UrbanSound8K.csv"), atomically: true, encoding: .utf8)
    }

    @Test func urbanSound8KFoldsAndClassNames() throws {
        let root = try folder("us8k")
        try writeUrbanSound(root)
        #expect(try DatasetSource.detect(root) == .urbansound8k)
        var source = try DatasetSource(path: root)
        source.audio.length = 50
        let train = try source.load(.train, order: .files), test = try source.load(.test, order: .files)
        #expect(train.count == 8 && test.count == 2)
        #expect(train.labels == (1...8).map { $0 % 3 } && test.labels == [0, 1])
        #expect(train.classes == 3 && train.classNames == ["air_conditioner", "car_horn", "children_playing"])
        // Mixed to mono, resampled from 16 kHz to 8 kHz (200 → 100 samples), cropped to the middle 50.
        #expect(train.sampleRate == 8000 && train.sampleShape == [1, 50])
        let fold3 = train.pixels[2 * 50 + 25]
        #expect(abs(fold3 - 3.0 / 64) < 0.01, "\(fold3)")
        // Selectable folds: test on fold 3 alone, train on the rest.
        source.audio.testFolds = [3]
        #expect(try source.load(.test, order: .files).labels == [0])
        #expect(try source.load(.train, order: .files).count == 9)
        source.audio = .init(length: 50, trainFolds: [1, 2], testFolds: [2, 5])
        expectDatasetError(containing: ["us8k", "2", "both"]) { _ = try source.load(.train, order: .files) }
        source.audio = .init(length: 50, trainFolds: [11])
        expectDatasetError(containing: ["folds 1…10", "11"]) { _ = try source.load(.train, order: .files) }
        // In a parent directory's UrbanSound8K/ too.
        let parent = try folder("us8k-parent")
        try writeUrbanSound(parent.appendingPathComponent("UrbanSound8K"))
        #expect(try DatasetSource.detect(parent) == .urbansound8k)
        #expect(try LabelledDataset.urbanSound8K(directory: parent, folds: [9, 10], length: 20).count == 2)
    }

    @Test func urbanSound8KErrorsNameTheFile() throws {
        let root = try folder("us8k-bad")
        try writeUrbanSound(root, header: "slice_file_name,fsID,start,end,salience,fold,class")
        let csv = root.appendingPathComponent("metadata/UrbanSound8K.csv").path
        expectDatasetError(containing: [csv, "classID"]) { _ = try DatasetSource(path: root).load(.train, order: .files) }
        // A clip the metadata lists but the folder lacks.
        let missing = try folder("us8k-missing")
        try writeUrbanSound(missing)
        try FileManager.default.removeItem(at: missing.appendingPathComponent("audio/fold10/110-0-0-10.wav"))
        expectDatasetError(containing: ["fold10/110-0-0-10.wav"]) { _ = try DatasetSource(path: missing).load(.test, order: .files) }
    }

    @Test func audioClassFolders() throws {
        // A single folder of WAV and FLAC clips in class folders: split 20 % stratified and seeded.
        let root = try folder("sounds")
        for (c, name) in ["bark", "meow"].enumerated() {
            for i in 0..<5 {
                let v = Float(c * 10 + i) / 64
                if i == 4 {
                    try writeSndFile(root.appendingPathComponent("\(name)/\(i).flac"), samples: [Float](repeating: v, count: 80),
                                     rate: 8000, format: Int32(SF_FORMAT_FLAC | SF_FORMAT_PCM_16))
                } else {
                    try writeClip(root.appendingPathComponent("\(name)/\(i).wav"), value: v, count: 80)
                }
            }
        }
        try Data("x".utf8).write(to: root.appendingPathComponent("bark/notes.txt"))
        #expect(try DatasetSource.detect(root) == .audioFolder)
        var source = try DatasetSource(path: root)
        source.audio.length = 80
        let all = try LabelledDataset.audioFolder(root: root, length: 80)
        #expect(all.count == 10 && all.classNames == ["bark", "meow"] && all.labels == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
        let written: [Float] = (0..<10).map { (i: Int) -> Float in Float((i / 5) * 10 + i % 5) / 64 }
        let read = firstSamples(all)
        #expect(zip(read, written).allSatisfy { (r: Float, w: Float) -> Bool in abs(r - w) < 1e-4 }, "\(read)")
        let train = try source.load(.train, order: .files), test = try source.load(.test, order: .files)
        #expect(train.count == 8 && test.count == 2 && test.labels == [0, 1])
        #expect(train.sampleRate == 8000 && test.classNames == ["bark", "meow"])
        #expect(firstSamples(try source.load(.test, order: .files)) == firstSamples(test))
        // train/ + test/ folders.
        let split = try folder("sounds-split")
        for part in ["train", "test"] {
            for name in ["a", "b"] { try writeClip(split.appendingPathComponent("\(part)/\(name)/x.wav"), value: 0.25, count: 40) }
        }
        #expect(try DatasetSource.detect(split) == .audioFolder)
        var s2 = try DatasetSource(path: split, format: .audioFolder)
        s2.audio.length = 40
        #expect(try s2.load(.train, order: .files).labels == [0, 1] && s2.load(.test, order: .files).labels == [0, 1])
        // A clip of zero samples among them is an error naming it.
        try writeWAV(split.appendingPathComponent("test/b/y.wav"), samples: [], rate: 8000)
        expectDatasetError(containing: ["test/b/y.wav", "zero samples"]) { _ = try s2.load(.test, order: .files) }
        // A non-audio file named .wav too.
        try Data("not audio".utf8).write(to: split.appendingPathComponent("train/a/z.wav"))
        expectDatasetError(containing: ["train/a/z.wav", "not a readable audio file"]) { _ = try s2.load(.train, order: .files) }
    }

    @Test func noDatasetMessageListsTheAudioLayouts() throws {
        let empty = try folder("nothing")
        expectDatasetError(containing: ["no dataset found", "UrbanSound8K", "FSDD", "class folders of audio", "an empty directory"]) {
            _ = try DatasetSource(path: empty)
        }
        #expect(DatasetFormat(rawValue: "audiofolder") == .audioFolder && DatasetFormat(rawValue: "fsdd") == .fsdd)
        #expect(DatasetFormat.allCases.filter(\.isAudio) == [.fsdd, .urbansound8k, .audioFolder])
    }
}
