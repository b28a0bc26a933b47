import CDNNL
import Dispatch
import Foundation

/// Which implementation runs the heavy kernels (convolutions, pooling, batch norm, GEMM).
public enum KernelBackend: String, Sendable, CaseIterable {
    /// oneDNN 2.6 primitives, cached per shape (the default).
    case onednn
    /// Plain Swift loops: slow, obviously correct; the tests' oracle.
    case reference
}

/// Process-wide engine settings.
public enum Engine {
    @TaskLocal static var taskBackend: KernelBackend? = nil
    nonisolated(unsafe) private static var _threads: Int = {
        let n = ProcessInfo.processInfo.activeProcessorCount
        omp_set_num_threads(Int32(n))
        return n
    }()
    private static let lock = NSLock()

    /// The kernel backend in effect for the current task (default: oneDNN).
    public static var backend: KernelBackend { taskBackend ?? .onednn }

    /// Runs `body` with every heavy op on `backend` (used by tests to compare the two).
    public static func withBackend<R>(_ backend: KernelBackend, _ body: () throws -> R) rethrows -> R {
        try $taskBackend.withValue(backend) { try body() }
    }

    /// Number of threads for oneDNN (OpenMP) and the engine's own loops; default all cores.
    public static var threads: Int {
        get { lock.lock(); defer { lock.unlock() }; return _threads }
        set {
            precondition(newValue >= 1, "thread count must be at least 1")
            lock.lock(); _threads = newValue; lock.unlock()
            omp_set_num_threads(Int32(newValue))
        }
    }

    /// Splits `0..<count` into at most `threads` contiguous chunks run in parallel, when
    /// `count` is at least `grain`; otherwise runs `body(0..<count)` on the caller.
    @inlinable
    public static func parallelFor(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Void) {
        let t = threads
        if t <= 1 || count < grain * 2 { body(0..<count); return }
        let chunks = min(t, count / grain)
        let step = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { escaping in
            let box = UncheckedSendable(escaping)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = c * step
                let hi = min(count, lo + step)
                if lo < hi { box.value(lo..<hi) }
            }
        }
    }
}

/// Carries a value across a concurrency boundary the caller knows to be safe
/// (disjoint index ranges of one buffer).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

/// Facts about the linked libraries.
public enum EngineInfo {
    /// The oneDNN library version, e.g. "2.6.3".
    public static var onednnVersion: String {
        guard let v = dnnl_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }
}
