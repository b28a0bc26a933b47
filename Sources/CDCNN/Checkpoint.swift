import CDCFileIO
import CDCSafetensors
import CDCTensor
import Foundation

/// Why a checkpoint could not be loaded; each case names the tensor and the problem.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case missing([String])
    case unexpected([String])
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    case wrongDType(name: String, expected: String, found: String)
    case file(String)

    public var description: String {
        switch self {
        case .missing(let n): return "checkpoint lacks \(n.count) tensor(s) the model needs: \(n.prefix(8).joined(separator: ", "))"
        case .unexpected(let n): return "checkpoint has \(n.count) tensor(s) the model does not: \(n.prefix(8).joined(separator: ", "))"
        case .shapeMismatch(let name, let e, let f): return "tensor '\(name)': the model expects shape \(e), the checkpoint has \(f)"
        case .wrongDType(let name, let e, let f): return "tensor '\(name)': expected dtype \(e), the checkpoint has \(f)"
        case .file(let m): return m
        }
    }
}

/// A module's state (parameters, buffers, counters) in PyTorch's `state_dict` naming, and its
/// safetensors files.
///
///     try Checkpoint.save(model, to: url)
///     try Checkpoint.load(into: model, from: url)     // strict: names and shapes must match
public enum Checkpoint {
    /// The state as safetensors tensors (float32; counters as int64 scalars).
    public static func stateDict(_ module: Module) -> [String: SafetensorsTensor] {
        var out: [String: SafetensorsTensor] = [:]
        for (name, t) in module.namedParameters() { out[name] = SafetensorsTensor(float32: t.values, shape: t.shape) }
        for (name, b) in module.namedBuffers() { out[name] = SafetensorsTensor(float32: b.tensor.values, shape: b.tensor.shape) }
        for (name, c) in module.namedCounters() {
            out[name] = SafetensorsTensor(dtype: .i64, shape: [], data: LittleEndian.bytes(of: Int64(c.value)))
        }
        return out
    }

    /// Copies `state` into the module. With `strict`, every name must match both ways.
    /// Nothing is changed unless every tensor fits.
    public static func load(_ state: [String: SafetensorsTensor], into module: Module, strict: Bool = true) throws {
        let params = module.namedParameters(), buffers = module.namedBuffers(), counters = module.namedCounters()
        let known = Set(params.map(\.0) + buffers.map(\.0) + counters.map(\.0))
        let missing = known.subtracting(state.keys).sorted()
        if strict && !missing.isEmpty { throw CheckpointError.missing(missing) }
        let unexpected = Set(state.keys).subtracting(known).sorted()
        if strict && !unexpected.isEmpty { throw CheckpointError.unexpected(unexpected) }
        // Validate everything first, then assign (all or nothing).
        var floatUpdates: [(Tensor, [Float])] = []
        for (name, t) in params.map({ ($0.0, $0.1) }) + buffers.map({ ($0.0, $0.1.tensor) }) {
            guard let s = state[name] else { continue }
            // Half-precision and double tensors (an fp16 decoder upload, a PyTorch `.half()` file)
            // are widened to Float.
            guard [.f32, .f16, .bf16, .f64].contains(s.dtype) else {
                throw CheckpointError.wrongDType(name: name, expected: "F32", found: s.dtype.rawValue)
            }
            guard s.shape == t.shape else { throw CheckpointError.shapeMismatch(name: name, expected: t.shape, found: s.shape) }
            floatUpdates.append((t, try s.floats()))
        }
        var counterUpdates: [(Counter, Int)] = []
        for (name, c) in counters {
            guard let s = state[name] else { continue }
            guard s.dtype == .i64 || s.dtype == .i32 else {
                throw CheckpointError.wrongDType(name: name, expected: "I64", found: s.dtype.rawValue)
            }
            guard s.shape.reduce(1, *) == 1 else { throw CheckpointError.shapeMismatch(name: name, expected: [], found: s.shape) }
            guard s.data.count == s.dtype.byteSize else {
                throw CheckpointError.file("tensor '\(name)': \(s.data.count) bytes for one \(s.dtype.rawValue) value")
            }
            // Read the integer itself (through Float it would round above 2^24).
            let value = s.dtype == .i64 ? Int(LittleEndian.load(Int64.self, from: s.data, at: 0))
                                        : Int(LittleEndian.load(Int32.self, from: s.data, at: 0))
            counterUpdates.append((c, value))
        }
        for (t, v) in floatUpdates { t.assign(Tensor(v, shape: t.shape)) }
        for (c, v) in counterUpdates { c.value = v }
    }

    /// Writes the module's state as a safetensors file (atomically).
    public static func save(_ module: Module, to url: URL, metadata: [String: String] = [:]) throws {
        var meta = metadata
        if meta["format"] == nil { meta["format"] = "pt" }
        try SafetensorsFile(tensors: stateDict(module), metadata: meta).write(to: url)
    }

    /// Reads a safetensors file into the module; returns the file's metadata.
    @discardableResult
    public static func load(into module: Module, from url: URL, strict: Bool = true) throws -> [String: String] {
        let file = try SafetensorsFile.read(from: url)
        try load(file.tensors, into: module, strict: strict)
        return file.metadata
    }
}
