import CDNNL
import Foundation

/// The arithmetic the heavy ops (convolutions, transposed convolutions, linear layers) run in.
///
/// Weights, weight gradients, optimizer state, batch-norm statistics, losses and reductions are
/// float32 in every mode; the precision only decides what the activations and their gradients
/// are rounded to where they enter and leave those ops.
public enum ComputePrecision: String, Sendable, CaseIterable, Codable {
    /// float32 everywhere (the default).
    case fp32
    /// bfloat16 numerics on float32 kernels: the inputs, weights and outputs of every convolution
    /// and linear layer (and their data gradients) are rounded to bfloat16 (round to nearest
    /// even) exactly where a bf16 kernel would read or write them, and the products are summed
    /// in float32 as bf16 hardware does. It runs on any CPU, a little slower than fp32, and
    /// shows what bf16 training does to accuracy where no bf16 kernel exists.
    case bf16Emulated = "bf16-emulated"
    /// oneDNN's bfloat16 kernels. oneDNN 2.6 has them only on AVX-512 CPUs
    /// (``EngineInfo/bf16KernelsAvailable``); this build does not run them yet, see
    /// ``Engine/setPrecision(_:)``.
    case bf16

    /// Whether activations are rounded to bfloat16 at the heavy ops.
    public var roundsToBF16: Bool { self != .fp32 }
}

extension Engine {
    @TaskLocal static var taskPrecision: ComputePrecision? = nil
    nonisolated(unsafe) private static var _precision: ComputePrecision = .fp32
    private static let precisionLock = NSLock()

    /// The precision in effect for the current task (default: fp32, or what ``setPrecision(_:)`` chose).
    public static var precision: ComputePrecision {
        if let p = taskPrecision { return p }
        precisionLock.lock(); defer { precisionLock.unlock() }
        return _precision
    }

    /// Sets the process-wide precision. `.bf16` is refused with the reason (oneDNN's bf16
    /// kernels are missing on this CPU, or not wired into this engine yet).
    public static func setPrecision(_ p: ComputePrecision) throws {
        if p == .bf16 { throw PrecisionError.bf16Unavailable(EngineInfo.bf16Diagnosis) }
        precisionLock.lock(); _precision = p; precisionLock.unlock()
    }

    /// Runs `body` with `precision` for every op it records (tests and comparisons).
    public static func withPrecision<R>(_ precision: ComputePrecision, _ body: () throws -> R) rethrows -> R {
        precondition(precision != .bf16, "native bf16 is not available: \(EngineInfo.bf16Diagnosis)")
        return try $taskPrecision.withValue(precision) { try body() }
    }
}

/// Why a precision cannot be used.
public enum PrecisionError: Error, CustomStringConvertible {
    case bf16Unavailable(String)
    public var description: String {
        switch self {
        case .bf16Unavailable(let why): return "bf16 is not available: \(why)"
        }
    }
}

extension EngineInfo {
    /// The instruction set oneDNN dispatches to on this CPU (`avx2`, `avx512_core_bf16`, …).
    public static var cpuISA: String {
        let isa = dnnl_get_effective_cpu_isa()
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"), (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"),
            (dnnl_cpu_isa_sse41, "sse41"),
        ]
        for (value, name) in names where isa.rawValue & value.rawValue == value.rawValue { return name }
        return "isa 0x\(String(isa.rawValue, radix: 16))"
    }

    /// Whether oneDNN can create a bfloat16 convolution on this CPU (probed once: oneDNN 2.6
    /// implements bf16 convolutions, batch norm, eltwise and matmul only from AVX-512 on; on an
    /// AVX2 CPU only reorders to and from bf16 exist).
    public static let bf16KernelsAvailable: Bool = {
        var src = dnnl_memory_desc_t(), w = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
        var sd = DNNL.dims([2, 16, 8, 8]), wd = DNNL.dims([16, 16, 3, 3])
        func p(_ x: UnsafePointer<dnnl_dims_t>) -> UnsafePointer<Int64> { UnsafeRawPointer(x).assumingMemoryBound(to: Int64.self) }
        guard dnnl_memory_desc_init_by_tag(&src, 4, p(&sd), dnnl_bf16, dnnl_format_tag_any) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&dst, 4, p(&sd), dnnl_bf16, dnnl_format_tag_any) == dnnl_success,
              dnnl_memory_desc_init_by_tag(&w, 4, p(&wd), dnnl_bf16, dnnl_format_tag_any) == dnnl_success else { return false }
        var s = DNNL.dims([1, 1]), pad = DNNL.dims([1, 1])
        var desc = dnnl_convolution_desc_t()
        guard dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct, &src, &w, nil, &dst,
                                                 p(&s), p(&pad), p(&pad)) == dnnl_success else { return false }
        var pd: OpaquePointer?
        guard dnnl_primitive_desc_create(&pd, &desc, nil, DNNL.engine, nil) == dnnl_success, let pd else { return false }
        dnnl_primitive_desc_destroy(pd)
        return true
    }()

    /// One sentence on bf16 on this machine, for messages.
    public static var bf16Diagnosis: String {
        if bf16KernelsAvailable {
            return "oneDNN \(onednnVersion) has bf16 kernels on this CPU (\(cpuISA)), but this engine does not run them yet; "
                + "bf16-emulated gives bf16's numerics on float32 kernels"
        }
        return "oneDNN \(onednnVersion) has no bf16 convolution kernels for this CPU (its instruction set: \(cpuISA); "
            + "oneDNN 2.6 needs AVX-512); bf16-emulated gives bf16's numerics on float32 kernels"
    }
}

/// bfloat16 rounding of float32 buffers (the emulated precision's one primitive).
public enum BF16 {
    /// `x` rounded to the nearest bfloat16 (ties to even), as a float32. NaN stays NaN.
    @inlinable public static func round(_ x: Float) -> Float {
        let b = x.bitPattern
        if x.isNaN { return x }
        let r = (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000
        return Float(bitPattern: r)
    }

    /// Rounds `count` floats at `p` to bfloat16 in place.
    public static func roundInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
        Engine.parallelFor(count) { r in
            let u = UnsafeMutableRawPointer(p).assumingMemoryBound(to: UInt32.self)
            for i in r {
                let b = u[i]
                // NaN (exponent all ones, mantissa non-zero) is left as it is.
                if b & 0x7F80_0000 == 0x7F80_0000 && b & 0x007F_FFFF != 0 { continue }
                u[i] = (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000
            }
        }
    }

    /// `storage` rounded to bfloat16: in place when `owned` (a buffer made for this call), else a
    /// rounded copy (the original belongs to a tensor that must keep its values).
    static func rounded(_ storage: Storage, owned: Bool) -> Storage {
        if owned { roundInPlace(storage.pointer, count: storage.count); return storage }
        let out = Storage(count: storage.count)
        out.pointer.update(from: storage.pointer, count: storage.count)
        roundInPlace(out.pointer, count: out.count)
        return out
    }
}
