import Dispatch
import Foundation

/// Audio datasets: the Free Spoken Digit Dataset, UrbanSound8K and class folders of audio
/// files, read into ``LabelledDataset``s of mono clips (`1 × 1 × length`, ``LabelledDataset/sampleRate`` set).
///
/// Every clip goes through ``AudioFile/clip(_:sampleRate:length:)``: mono mix, resampling with
/// libsoxr to `sampleRate` when the file's rate differs, zero padding at the end or a crop
/// centred on the loudest second to `length` samples.
extension LabelledDataset {
    /// Reads the audio files `files` (label `labels[i]` for `files[i]`) into a dataset of clips of
    /// `length` samples at `sampleRate`, in that order. Files are decoded in parallel on all
    /// cores; when several are bad, the error names the first in order.
    public static func audioClips(files: [URL], labels: [Int], classes: Int, classNames: [String] = [],
                                  sampleRate: Int = 8000, length: Int = 8000) throws -> LabelledDataset {
        precondition(files.count == labels.count, "\(files.count) files but \(labels.count) labels")
        guard sampleRate > 0 else { throw DatasetError("the sample rate must be positive, not \(sampleRate)") }
        guard length > 0 else { throw DatasetError("the clip length must be positive, not \(length)") }
        let n = files.count
        var samples = [Float](repeating: 0, count: n * length)
        var errors = [DatasetError?](repeating: nil, count: n)
        let workers = max(1, min(n, ProcessInfo.processInfo.activeProcessorCount))
        samples.withUnsafeMutableBufferPointer { dst in
            errors.withUnsafeMutableBufferPointer { errs in
                let dst = UnsafeSendable(dst), errs = UnsafeSendable(errs)
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    for i in stride(from: w, to: n, by: workers) {
                        do {
                            let clip = try AudioFile.clip(files[i], sampleRate: sampleRate, length: length)
                            clip.withUnsafeBufferPointer { src in
                                (dst.value.baseAddress! + i * length).update(from: src.baseAddress!, count: length)
                            }
                        } catch {
                            errs.value[i] = error as? DatasetError ?? DatasetError("\(files[i].path): \(error)")
                        }
                    }
                }
            }
        }
        if let first = errors.lazy.compactMap({ $0 }).first { throw first }
        return LabelledDataset(audio: samples, labels: labels, length: length, sampleRate: sampleRate,
                               classes: classes, classNames: classNames)
    }

    // MARK: FSDD

    /// The digit, speaker and take of an FSDD file name `{digit}_{speaker}_{index}.wav`
    /// (e.g. `3_jackson_12.wav`); nil for other names.
    public static func fsddName(_ fileName: String) -> (digit: Int, speaker: String, index: Int)? {
        let url = URL(fileURLWithPath: fileName)
        guard AudioFile.extensions.contains(url.pathExtension.lowercased()) else { return nil }
        let parts = url.deletingPathExtension().lastPathComponent.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0].count == 1, let digit = Int(parts[0]),
              let last = parts.last, !last.isEmpty, last.allSatisfy(\.isASCII), last.allSatisfy(\.isNumber), let index = Int(last)
        else { return nil }
        let speaker = parts[1..<(parts.count - 1)].joined(separator: "_")
        guard !speaker.isEmpty else { return nil }
        return (digit, speaker, index)
    }

    /// The directory of an FSDD checkout that holds the clips: `directory` itself or its `recordings/`.
    static func fsddRecordings(_ directory: URL) -> URL {
        let recordings = directory.appendingPathComponent("recordings", isDirectory: true)
        return DatasetSource.isDirectory(recordings) ? recordings : directory
    }

    /// Loads the Free Spoken Digit Dataset: one flat folder (`directory` or its `recordings/`)
    /// of `{digit}_{speaker}_{index}.wav` files. The official split: takes 0–4 of every
    /// speaker and digit are the test set, the rest the training set. Classes 0–9 named
    /// "0"…"9"; files in sorted name order. An audio file whose name does not follow the
    /// pattern is an error naming it; other files are skipped.
    public static func fsdd(directory: URL, train: Bool, sampleRate: Int = 8000, length: Int = 8000) throws -> LabelledDataset {
        let root = fsddRecordings(directory)
        guard DatasetSource.isDirectory(root) else { throw DatasetError("\(directory.path): no such directory") }
        let names = try FileManager.default.contentsOfDirectory(atPath: root.path)
            .filter { !$0.hasPrefix(".") && AudioFile.extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }
            .sorted()
        guard !names.isEmpty else { throw DatasetError("\(root.path): no FSDD recordings ({digit}_{speaker}_{index}.wav)") }
        var files: [URL] = [], labels: [Int] = []
        for name in names {
            guard let parsed = fsddName(name) else {
                throw DatasetError("\(root.appendingPathComponent(name).path): not an FSDD file name (expected {digit}_{speaker}_{index}.wav)")
            }
            if (parsed.index < 5) != train {
                files.append(root.appendingPathComponent(name)); labels.append(parsed.digit)
            }
        }
        guard !files.isEmpty else {
            throw DatasetError("\(root.path): no FSDD recordings in the \(train ? "training (index ≥ 5)" : "test (index 0–4)") split")
        }
        return try audioClips(files: files, labels: labels, classes: 10, classNames: (0..<10).map(String.init),
                              sampleRate: sampleRate, length: length)
    }

    // MARK: UrbanSound8K

    /// The root of an UrbanSound8K checkout: `directory` or its `UrbanSound8K/`, whichever holds
    /// `metadata/UrbanSound8K.csv` (`directory` when neither does).
    static func urbanSound8KRoot(_ directory: URL) -> URL {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.appendingPathComponent("metadata/UrbanSound8K.csv").path) { return directory }
        let nested = directory.appendingPathComponent("UrbanSound8K", isDirectory: true)
        if fm.fileExists(atPath: nested.appendingPathComponent("metadata/UrbanSound8K.csv").path) { return nested }
        return directory
    }

    /// One row of UrbanSound8K's metadata.
    struct UrbanSoundClip { var file: String; var fold: Int; var classID: Int; var className: String }

    /// Reads `metadata/UrbanSound8K.csv`: its clips, the class count (largest `classID` + 1) and
    /// the class names (from the `class` column). Columns are found by header name.
    static func urbanSound8KMetadata(_ csv: URL) throws -> (clips: [UrbanSoundClip], classes: Int, classNames: [String]) {
        let text: String
        do { text = try String(contentsOf: csv, encoding: .utf8) } catch {
            throw DatasetError("\(csv.path): cannot read the UrbanSound8K metadata (\(error.localizedDescription))")
        }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard let headerLine = lines.first else { throw DatasetError("\(csv.path): empty CSV file (expected a header line)") }
        let header = parseCSVLine(headerLine).map { $0.trimmingCharacters(in: .whitespaces) }
        func column(_ name: String) throws -> Int {
            guard let i = header.firstIndex(of: name) else {
                throw DatasetError("\(csv.path): no column \"\(name)\" in the header (found \(header.joined(separator: ",")))")
            }
            return i
        }
        let (fileCol, foldCol, idCol, classCol) = (try column("slice_file_name"), try column("fold"), try column("classID"), try column("class"))
        var clips: [UrbanSoundClip] = []
        var names: [Int: String] = [:]
        for (number, line) in lines.enumerated().dropFirst() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let fields = parseCSVLine(line)
            let needed = max(fileCol, foldCol, idCol, classCol)
            guard fields.count > needed else {
                throw DatasetError("\(csv.path): line \(number + 1) has \(fields.count) fields, fewer than the header's \(header.count)")
            }
            let file = fields[fileCol].trimmingCharacters(in: .whitespaces)
            guard let fold = Int(fields[foldCol].trimmingCharacters(in: .whitespaces)) else {
                throw DatasetError("\(csv.path): line \(number + 1): fold \"\(fields[foldCol])\" is not a number")
            }
            guard let id = Int(fields[idCol].trimmingCharacters(in: .whitespaces)), (0..<1000).contains(id) else {
                throw DatasetError("\(csv.path): line \(number + 1): classID \"\(fields[idCol])\" is not a number in 0…999")
            }
            guard !file.isEmpty, !file.contains("/") else {
                throw DatasetError("\(csv.path): line \(number + 1): bad slice_file_name \"\(file)\"")
            }
            let className = fields[classCol].trimmingCharacters(in: .whitespaces)
            if names[id] == nil { names[id] = className }
            clips.append(UrbanSoundClip(file: file, fold: fold, classID: id, className: className))
        }
        guard !clips.isEmpty else { throw DatasetError("\(csv.path): the metadata lists no clips") }
        let classes = (names.keys.max() ?? 0) + 1
        return (clips, classes, (0..<classes).map { names[$0] ?? String($0) })
    }

    /// The fields of one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote).
    static func parseCSVLine(_ line: String) -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var chars = line.makeIterator()
        while let c = chars.next() {
            if quoted {
                if c == "\"" {
                    // A doubled quote is a literal one; a single one ends the quoted part.
                    var lookahead = chars
                    if lookahead.next() == "\"" { field.append("\""); chars = lookahead } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" { quoted = true }
            else if c == "," { fields.append(field); field = "" }
            else { field.append(c) }
        }
        fields.append(field)
        return fields
    }

    /// The folds UrbanSound8K trains on by default (1–8).
    public static let urbanSound8KTrainFolds = Array(1...8)
    /// The folds UrbanSound8K tests on by default (9 and 10).
    public static let urbanSound8KTestFolds = [9, 10]

    /// Loads the UrbanSound8K clips of `folds` (each in 1…10): `audio/fold<n>/<slice_file_name>`
    /// as listed in `metadata/UrbanSound8K.csv` (in `directory` or its `UrbanSound8K/`). Labels
    /// are the `classID` column (10 classes), class names the `class` column; clips in fold
    /// order, then sorted by file name. A missing column or file is an error naming it.
    public static func urbanSound8K(directory: URL, folds: [Int], sampleRate: Int = 8000, length: Int = 8000) throws -> LabelledDataset {
        let root = urbanSound8KRoot(directory)
        let csv = root.appendingPathComponent("metadata/UrbanSound8K.csv")
        guard FileManager.default.fileExists(atPath: csv.path) else {
            throw DatasetError("\(csv.path): no such file (UrbanSound8K keeps its labels in metadata/UrbanSound8K.csv)")
        }
        guard !folds.isEmpty else { throw DatasetError("\(root.path): no UrbanSound8K folds selected") }
        if let bad = folds.first(where: { !(1...10).contains($0) }) {
            throw DatasetError("\(root.path): UrbanSound8K has folds 1…10, not \(bad)")
        }
        let (clips, classes, classNames) = try urbanSound8KMetadata(csv)
        let wanted = Set(folds)
        let chosen = clips.filter { wanted.contains($0.fold) }
            .sorted { ($0.fold, $0.file) < ($1.fold, $1.file) }
        guard !chosen.isEmpty else {
            throw DatasetError("\(csv.path): lists no clips in fold\(folds.count == 1 ? "" : "s") \(folds.sorted().map(String.init).joined(separator: ", "))")
        }
        let audio = root.appendingPathComponent("audio", isDirectory: true)
        let files = chosen.map { audio.appendingPathComponent("fold\($0.fold)/\($0.file)") }
        return try audioClips(files: files, labels: chosen.map(\.classID), classes: classes, classNames: classNames,
                              sampleRate: sampleRate, length: length)
    }

    // MARK: Audio class folders

    /// Loads a folder of labelled audio files laid out as `root/<class>/…/*.wav|flac|ogg|…`
    /// (see ``AudioFile/extensions``), like ``imageFolder(root:channels:)``: classes are the
    /// subdirectories of `root` sorted by name (label = position, ``classNames`` = the names);
    /// files are found recursively, hidden entries and other extensions skipped, and taken in
    /// sorted path order; every class must hold at least one audio file.
    public static func audioFolder(root: URL, sampleRate: Int = 8000, length: Int = 8000) throws -> LabelledDataset {
        let (classNames, files, labels) = try listAudioFolder(root)
        return try audioClips(files: files, labels: labels, classes: classNames.count, classNames: classNames,
                              sampleRate: sampleRate, length: length)
    }

    /// The class names, audio files (in load order) and their labels of an audio class folder.
    static func listAudioFolder(_ root: URL) throws -> (classNames: [String], files: [URL], labels: [Int]) {
        let fm = FileManager.default
        guard DatasetSource.isDirectory(root) else { throw DatasetError("\(root.path): no such directory") }
        let classNames = try fm.contentsOfDirectory(atPath: root.path)
            .filter { !$0.hasPrefix(".") && DatasetSource.isDirectory(root.appendingPathComponent($0)) }.sorted()
        guard !classNames.isEmpty else {
            throw DatasetError("\(root.path): no class subdirectories (expected root/<class>/<clip>.wav)")
        }
        var files: [URL] = [], labels: [Int] = []
        for (label, name) in classNames.enumerated() {
            let dir = root.appendingPathComponent(name, isDirectory: true)
            let found = (fm.subpaths(atPath: dir.path) ?? []).filter { path in
                let url = dir.appendingPathComponent(path)
                return !path.split(separator: "/").contains { $0.hasPrefix(".") }
                    && AudioFile.extensions.contains(url.pathExtension.lowercased())
                    && !DatasetSource.isDirectory(url)
            }.sorted()
            guard !found.isEmpty else {
                throw DatasetError("\(dir.path): class directory holds no audio files (.wav, .flac, .ogg, …)")
            }
            for path in found { files.append(dir.appendingPathComponent(path)); labels.append(label) }
        }
        return (classNames, files, labels)
    }
}
