import CDCTensor
import CZlib
import Foundation

/// Reader of the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).
public enum IDX {
    /// Raw bytes of a file, gunzipped when it starts with the gzip magic.
    public static func readBytes(_ url: URL) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: url.path) else { throw DatasetError("\(url.path): no such file") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DatasetError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        if data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b {
            guard let gz = gzopen(url.path, "rb") else { throw DatasetError("\(url.path): cannot open as gzip") }
            defer { gzclose(gz) }
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
                if n < 0 { throw DatasetError("\(url.path): corrupt gzip stream") }
                if n == 0 { break }
                out.append(contentsOf: chunk[0..<Int(n)])
            }
            return out
        }
        return [UInt8](data)
    }

    /// Parses an IDX file of unsigned bytes: returns its dimensions and the data.
    public static func parse(_ bytes: [UInt8], name: String) throws -> (dims: [Int], data: ArraySlice<UInt8>) {
        guard bytes.count >= 4 else { throw DatasetError("\(name): file is shorter than an IDX header") }
        guard bytes[0] == 0, bytes[1] == 0 else { throw DatasetError("\(name): not an IDX file (bad magic)") }
        guard bytes[2] == 0x08 else { throw DatasetError("\(name): IDX type 0x\(String(bytes[2], radix: 16)) is not unsigned bytes") }
        let rank = Int(bytes[3])
        guard rank >= 1, bytes.count >= 4 + 4 * rank else { throw DatasetError("\(name): truncated IDX header") }
        var dims: [Int] = []
        for i in 0..<rank {
            let o = 4 + 4 * i
            dims.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let need = dims.reduce(1, *), start = 4 + 4 * rank
        guard bytes.count - start == need else {
            throw DatasetError("\(name): header promises \(need) bytes of data (\(dims)), file has \(bytes.count - start)")
        }
        return (dims, bytes[start...])
    }
}

extension LabelledDataset {
    /// Loads an IDX images/labels pair (`count × rows × cols` unsigned bytes, one label byte per
    /// image, either file optionally gzip-compressed): one channel, `classes` = largest label + 1.
    public static func idx(images: URL, labels: URL) throws -> LabelledDataset {
        let (idims, idata) = try IDX.parse(try IDX.readBytes(images), name: images.path)
        let (ldims, ldata) = try IDX.parse(try IDX.readBytes(labels), name: labels.path)
        guard idims.count == 3 else { throw DatasetError("\(images.path): expected 3 dimensions (count, rows, cols), found \(idims)") }
        guard ldims.count == 1 else { throw DatasetError("\(labels.path): expected 1 dimension, found \(ldims)") }
        guard idims[1] > 0, idims[2] > 0 else { throw DatasetError("\(images.path): empty image size \(idims[1])×\(idims[2])") }
        guard idims[0] == ldims[0] else {
            throw DatasetError("\(images.path) has \(idims[0]) images but \(labels.path) has \(ldims[0]) labels")
        }
        let pixels = idata.map { Float($0) / 255 }
        let labels = ldata.map { Int($0) }
        return LabelledDataset(pixels: pixels, labels: labels, channels: 1, height: idims[1], width: idims[2],
                            classes: (labels.max() ?? 0) + 1)
    }

    /// Debian's `dataset-fashion-mnist` location.
    public static let fashionMNISTDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    /// The ten Fashion-MNIST class names, by label.
    public static let fashionMNISTClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    /// Fashion-MNIST (train or test split) from a directory of the four standard files
    /// (`train-`/`t10k-images-idx3-ubyte` and `-labels-idx1-ubyte`, each optionally `.gz`);
    /// 10 classes, named by ``fashionMNISTClassNames``.
    public static func fashionMNIST(train: Bool, directory: URL = fashionMNISTDirectory) throws -> LabelledDataset {
        let prefix = train ? "train" : "t10k"
        func file(_ base: String) -> URL {
            let gz = directory.appendingPathComponent(base + ".gz")
            return FileManager.default.fileExists(atPath: gz.path) ? gz : directory.appendingPathComponent(base)
        }
        var d = try idx(images: file("\(prefix)-images-idx3-ubyte"), labels: file("\(prefix)-labels-idx1-ubyte"))
        d.classes = 10
        d.classNames = fashionMNISTClassNames
        return d
    }
}
