import CDCFileIO
import CDCModels
import CDCNN
import CDCSafetensors
import Foundation

/// The learned prior on disk (`prior.safetensors`): its parameters (`logits`, `means`,
/// `log_scales`) and, made once from them when saved, the integer frequency tables of one mask
/// (`frequencies`, int32 `[K, 2L]`, each row summing to `total`), which the entropy coder uses
/// as they are — nothing is recomputed in floating point at load.
public enum PriorFile {
    /// Total of each saved frequency row.
    public static let total = 1 << 16

    /// Saves `prior`'s parameters and its frequency tables for `mask` to `url` (durably and
    /// atomically, as every safetensors file).
    public static func save(_ prior: FactorizedPrior, mask: Int, to url: URL) throws {
        var tensors = Checkpoint.stateDict(prior)
        let tables = prior.frequencyTables(mask: mask, total: total)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tables.count * tables[0].count * 4)
        for row in tables { for f in row { LittleEndian.append(Int32(f), to: &bytes) } }
        tensors["frequencies"] = SafetensorsTensor(dtype: .i32, shape: [tables.count, tables[0].count], data: bytes)
        try SafetensorsFile(tensors: tensors, metadata: ["model": "cdc-prior", "mask": "\(mask)", "total": "\(total)",
                                                        "components": "\(prior.components)"]).write(to: url)
    }

    /// Loads the parameters into `prior`; returns the saved mask and frequency tables.
    @discardableResult
    public static func load(into prior: FactorizedPrior, from url: URL) throws -> (mask: Int, tables: [[UInt32]]) {
        var file = try SafetensorsFile.read(from: url)
        guard file.metadata["model"] == "cdc-prior", let mask = file.metadata["mask"].flatMap(Int.init), (0...4).contains(mask),
              let f = file.tensors.removeValue(forKey: "frequencies") else {
            throw PipelineError("\(url.path): not a cdc prior file")
        }
        let width = 2 << (4 - mask)
        guard f.dtype == .i32, f.shape == [prior.channels, width], f.data.count == prior.channels * width * 4 else {
            throw PipelineError("\(url.path): frequencies must be int32 [\(prior.channels), \(width)], got \(f.dtype) \(f.shape)")
        }
        try Checkpoint.load(file.tensors, into: prior)
        let values = f.data.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count, by: 4).map { LittleEndian.load(UInt32.self, from: raw, at: $0) }
        }
        let tables = (0..<prior.channels).map { Array(values[($0 * width)..<(($0 + 1) * width)]) }
        guard tables.allSatisfy({ $0.allSatisfy { $0 >= 1 && $0 <= UInt32(total) } && $0.reduce(0, +) == UInt32(total) }) else {
            throw PipelineError("\(url.path): frequency rows must be positive and sum to \(total)")
        }
        return (mask, tables)
    }
}
