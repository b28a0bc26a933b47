import CDCTensor
import Foundation

/// Which of the two CIFAR-100 labels to use.
public enum CIFAR100Labels: Sendable {
    /// The 100 fine classes (second label byte).
    case fine
    /// The 20 coarse superclasses (first label byte).
    case coarse
}

extension LabelledDataset {
    /// Bytes of one CIFAR image (3 planes of 32×32: red, green, blue).
    static let cifarImageBytes = 3 * 32 * 32

    /// Reads CIFAR binary batches: records of `labelBytes` label bytes then 3072 pixel bytes
    /// (R plane, G plane, B plane, each 32×32 row-major); the label used is byte `labelIndex`
    /// and must be below `classes`.
    static func cifar(files: [URL], labelBytes: Int, labelIndex: Int, classes: Int) throws -> LabelledDataset {
        guard !files.isEmpty else { throw DatasetError("CIFAR: no batch files given") }
        let record = labelBytes + cifarImageBytes
        var contents: [(url: URL, bytes: [UInt8])] = []
        var total = 0
        for url in files {
            let bytes = try IDX.readBytes(url)
            guard !bytes.isEmpty else { throw DatasetError("\(url.path): empty file, not a CIFAR batch") }
            guard bytes.count % record == 0 else {
                throw DatasetError("\(url.path): size \(bytes.count) bytes is not a whole number of CIFAR records of "
                                   + "\(record) bytes (\(labelBytes) label byte\(labelBytes == 1 ? "" : "s") + 3072 pixel bytes)")
            }
            contents.append((url, bytes))
            total += bytes.count / record
        }
        var pixels = [Float](repeating: 0, count: total * cifarImageBytes)
        var labels: [Int] = []
        labels.reserveCapacity(total)
        try pixels.withUnsafeMutableBufferPointer { dst in
            var out = dst.baseAddress!
            for (url, bytes) in contents {
                try bytes.withUnsafeBufferPointer { src in
                    let n = bytes.count / record
                    for r in 0..<n {
                        let base = src.baseAddress! + r * record
                        let y = Int(base[labelIndex])
                        guard y < classes else {
                            throw DatasetError("\(url.path): record \(r) has label \(y), outside 0..<\(classes) — not a "
                                               + "\(classes == 10 ? "CIFAR-10" : "CIFAR-100") batch?")
                        }
                        labels.append(y)
                        let px = base + labelBytes
                        for k in 0..<cifarImageBytes { out[k] = Float(px[k]) / 255 }
                        out += cifarImageBytes
                    }
                }
            }
        }
        return LabelledDataset(pixels: pixels, labels: labels, channels: 3, height: 32, width: 32, classes: classes)
    }

    /// CIFAR-10 from binary batch files (`data_batch_1.bin` … or `test_batch.bin`), concatenated
    /// in the given order. Each record is 1 label byte (0…9) then 3072 pixel bytes: the red,
    /// green and blue 32×32 planes. A file that is not a whole number of 3073-byte records, or a
    /// label ≥ 10, is an error naming the file.
    public static func cifar10(files: [URL]) throws -> LabelledDataset {
        try cifar(files: files, labelBytes: 1, labelIndex: 0, classes: 10)
    }

    /// CIFAR-100 from binary files (`train.bin` or `test.bin`). Each record is 2 label bytes
    /// (coarse 0…19, then fine 0…99) and 3072 pixel bytes as in CIFAR-10; `labels` picks which
    /// label becomes the class (20 or 100 classes). Size and label errors name the file.
    public static func cifar100(files: [URL], labels: CIFAR100Labels = .fine) throws -> LabelledDataset {
        try cifar(files: files, labelBytes: 2, labelIndex: labels == .coarse ? 0 : 1,
                  classes: labels == .coarse ? 20 : 100)
    }

    /// The directory holding `names`: `directory` itself or its standard subdirectory `sub`
    /// (as unpacked from the official tarball).
    private static func cifarDirectory(_ directory: URL, holding name: String, orIn sub: String) -> URL {
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory.appendingPathComponent(name).path),
           fm.fileExists(atPath: directory.appendingPathComponent(sub).appendingPathComponent(name).path) {
            return directory.appendingPathComponent(sub)
        }
        return directory
    }

    /// Non-empty lines of a label-names file, when it exists and names exactly `classes` classes.
    private static func labelNames(_ url: URL, classes: Int) -> [String] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        return names.count == classes ? names : []
    }

    /// CIFAR-10 from the binary distribution's directory (`cifar-10-batches-bin`, or its
    /// parent): `data_batch_1.bin` … `data_batch_5.bin` for training, `test_batch.bin` otherwise.
    /// Class names come from `batches.meta.txt` when present.
    public static func cifar10(directory: URL, train: Bool) throws -> LabelledDataset {
        let dir = cifarDirectory(directory, holding: train ? "data_batch_1.bin" : "test_batch.bin",
                                 orIn: "cifar-10-batches-bin")
        let names = train ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
        var d = try cifar10(files: names.map { dir.appendingPathComponent($0) })
        d.classNames = labelNames(dir.appendingPathComponent("batches.meta.txt"), classes: 10)
        return d
    }

    /// CIFAR-100 from the binary distribution's directory (`cifar-100-binary`, or its parent):
    /// `train.bin` or `test.bin`. Class names come from `fine_label_names.txt` or
    /// `coarse_label_names.txt` when present.
    public static func cifar100(directory: URL, train: Bool, labels: CIFAR100Labels = .fine) throws -> LabelledDataset {
        let name = train ? "train.bin" : "test.bin"
        let dir = cifarDirectory(directory, holding: name, orIn: "cifar-100-binary")
        var d = try cifar100(files: [dir.appendingPathComponent(name)], labels: labels)
        d.classNames = labelNames(dir.appendingPathComponent(labels == .fine ? "fine_label_names.txt" : "coarse_label_names.txt"),
                                  classes: d.classes)
        return d
    }
}
