import CDCTensor
import CZlib
import Foundation

/// Why a dataset file could not be read; the message names the file and the problem.
public struct DatasetError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Reader of the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).
public enum IDX {
    /// Raw bytes of a file, gunzipped when it starts with the gzip magic.
    public static func readBytes(_ url: URL) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: url.path) else { throw DatasetError("\(url.path): no such file") }
        let data = try Data(contentsOf: url)
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

/// An in-memory labelled image dataset, pixels scaled to [0, 1].
public struct ImageDataset: Sendable {
    /// Pixels, `count × channels × height × width`, row-major.
    public var pixels: [Float]
    public var labels: [Int]
    public var channels: Int, height: Int, width: Int
    public var classes: Int
    public var count: Int { labels.count }

    /// Loads an IDX images/labels pair.
    public static func idx(images: URL, labels: URL) throws -> ImageDataset {
        let (idims, idata) = try IDX.parse(try IDX.readBytes(images), name: images.path)
        let (ldims, ldata) = try IDX.parse(try IDX.readBytes(labels), name: labels.path)
        guard idims.count == 3 else { throw DatasetError("\(images.path): expected 3 dimensions (count, rows, cols), found \(idims)") }
        guard ldims.count == 1 else { throw DatasetError("\(labels.path): expected 1 dimension, found \(ldims)") }
        guard idims[0] == ldims[0] else {
            throw DatasetError("\(images.path) has \(idims[0]) images but \(labels.path) has \(ldims[0]) labels")
        }
        let pixels = idata.map { Float($0) / 255 }
        let labels = ldata.map { Int($0) }
        return ImageDataset(pixels: pixels, labels: labels, channels: 1, height: idims[1], width: idims[2],
                            classes: (labels.max() ?? 0) + 1)
    }

    /// Debian's `dataset-fashion-mnist` location.
    public static let fashionMNISTDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    /// Fashion-MNIST (train or test split) from a directory of the four standard files.
    public static func fashionMNIST(train: Bool, directory: URL = fashionMNISTDirectory) throws -> ImageDataset {
        let prefix = train ? "train" : "t10k"
        func file(_ base: String) -> URL {
            let gz = directory.appendingPathComponent(base + ".gz")
            return FileManager.default.fileExists(atPath: gz.path) ? gz : directory.appendingPathComponent(base)
        }
        var d = try idx(images: file("\(prefix)-images-idx3-ubyte"), labels: file("\(prefix)-labels-idx1-ubyte"))
        d.classes = 10
        return d
    }

    /// The first `n` samples.
    public func prefix(_ n: Int) -> ImageDataset {
        let k = min(n, count), per = channels * height * width
        return ImageDataset(pixels: Array(pixels[0..<(k * per)]), labels: Array(labels[0..<k]), channels: channels,
                            height: height, width: width, classes: classes)
    }

    /// Batches in a seeded random order (the last partial batch is dropped when `dropLast`).
    public func batches(size: Int, shuffle seed: UInt64?, dropLast: Bool = false) -> [(Tensor, [Int])] {
        var order = Array(0..<count)
        if let seed { var g = SeededGenerator(seed: seed); order.shuffle(using: &g) }
        let per = channels * height * width
        var out: [(Tensor, [Int])] = []
        var i = 0
        while i < count {
            let n = min(size, count - i)
            if dropLast && n < size { break }
            let t = Tensor.empty([n, channels, height, width])
            let p = t.mutablePointer
            var ys: [Int] = []
            pixels.withUnsafeBufferPointer { src in
                for j in 0..<n {
                    let s = order[i + j]
                    (p + j * per).update(from: src.baseAddress! + s * per, count: per)
                    ys.append(labels[s])
                }
            }
            out.append((t, ys))
            i += n
        }
        return out
    }
}
