import CDNNL
import Foundation

/// A float32 n-dimensional tensor with optional reverse-mode gradient tracking.
///
/// Data is row-major (NCHW for images, NCL for audio) unless the tensor came out of a
/// oneDNN primitive that chose a blocked layout; such tensors carry the oneDNN memory
/// descriptor and are reordered to row-major on first plain access (``plain``).
///
///     let x = Tensor.randn([2, 3], seed: 1, requiresGrad: true)
///     let y = (x * x).sum()
///     y.backward()          // x.grad == 2 * x
public final class Tensor: @unchecked Sendable, CustomStringConvertible {
    /// Logical shape.
    public let shape: [Int]
    /// Number of elements.
    public let count: Int
    /// The buffer, in `blockedDesc`'s layout when that is set, else row-major.
    var storage: Storage
    /// oneDNN memory descriptor of a non-row-major layout, nil for row-major.
    var blockedDesc: dnnl_memory_desc_t?
    /// Lazily made row-major copy of a blocked tensor.
    private var plainCache: Storage?
    private let cacheLock = NSLock()

    /// Whether gradients flow to this tensor.
    public var requiresGrad: Bool
    /// Accumulated gradient (for leaves with `requiresGrad`) after `backward()`.
    public var grad: Tensor?
    /// The recorded operation that produced this tensor, nil for leaves.
    var gradFn: GradFn?

    /// Wraps an existing row-major storage.
    public init(shape: [Int], storage: Storage, requiresGrad: Bool = false) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        precondition(storage.count >= count, "storage of \(storage.count) floats is too small for shape \(shape)")
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// Wraps a storage held in a oneDNN blocked layout.
    init(shape: [Int], blockedStorage: Storage, desc: dnnl_memory_desc_t) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.storage = blockedStorage
        self.blockedDesc = desc
        self.requiresGrad = false
    }

    /// A tensor with the given values (row-major).
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(values.count == n, "\(values.count) values do not fill shape \(shape)")
        let s = Storage(count: n)
        values.withUnsafeBufferPointer { s.pointer.update(from: $0.baseAddress!, count: n) }
        self.init(shape: shape, storage: s, requiresGrad: requiresGrad)
    }

    /// A scalar (shape `[]`).
    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    /// Uninitialised row-major tensor (for kernels that write every element).
    public static func empty(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: Storage(count: shape.reduce(1, *)))
    }

    /// All zeros.
    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: Storage(count: shape.reduce(1, *), repeating: 0), requiresGrad: requiresGrad)
    }

    /// All ones.
    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    /// Every element `value`.
    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: Storage(count: shape.reduce(1, *), repeating: value), requiresGrad: requiresGrad)
    }

    /// Uniform in [low, high) from a generator.
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1,
                               generator: inout SeededGenerator, requiresGrad: Bool = false) -> Tensor {
        let t = empty(shape)
        generator.fillUniform(t.storage.buffer, low: low, high: high)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Standard normal from a generator.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1,
                              generator: inout SeededGenerator, requiresGrad: Bool = false) -> Tensor {
        let t = empty(shape)
        generator.fillNormal(t.storage.buffer, mean: mean, std: std)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Standard normal with a fixed seed (convenience for tests and examples).
    public static func randn(_ shape: [Int], seed: UInt64, requiresGrad: Bool = false) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return normal(shape, generator: &g, requiresGrad: requiresGrad)
    }

    /// Uniform [0, 1) with a fixed seed.
    public static func rand(_ shape: [Int], seed: UInt64, requiresGrad: Bool = false) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return uniform(shape, generator: &g, requiresGrad: requiresGrad)
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// True when the buffer is row-major.
    public var isPlain: Bool { blockedDesc == nil }

    /// Row-major storage of the values (reordered once from a blocked layout when needed).
    public var plain: Storage {
        guard let desc = blockedDesc else { return storage }
        cacheLock.lock(); defer { cacheLock.unlock() }
        if let c = plainCache { return c }
        let s = Storage(count: count)
        DNNL.reorderToPlain(from: storage, desc: desc, shape: shape, into: s)
        plainCache = s
        return s
    }

    /// The row-major buffer, for code that fills a fresh tensor (e.g. `Tensor.empty`).
    /// Only for plain tensors outside the gradient graph.
    public var mutablePointer: UnsafeMutablePointer<Float> {
        precondition(isPlain, "mutablePointer of a blocked tensor")
        return storage.pointer
    }

    /// The values, row-major, as an array.
    public var values: [Float] { Array(UnsafeBufferPointer(start: plain.pointer, count: count)) }

    /// The only value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs exactly one element, shape is \(shape)")
        return plain.pointer[0]
    }

    /// A tensor sharing this one's values, cut off from the gradient graph.
    public func detach() -> Tensor {
        let t = Tensor(shape: shape, storage: storage)
        t.blockedDesc = blockedDesc
        return t
    }

    /// A row-major deep copy without gradient history.
    public func copy() -> Tensor {
        let s = Storage(count: count)
        s.pointer.update(from: plain.pointer, count: count)
        return Tensor(shape: shape, storage: s)
    }

    /// Overwrites the values in place from `other` (same shape), outside the graph.
    public func assign(_ other: Tensor) {
        precondition(other.shape == shape, "assign: shape \(other.shape) does not match \(shape)")
        if blockedDesc != nil { storage = Storage(count: count); blockedDesc = nil; plainCache = nil }
        storage.pointer.update(from: other.plain.pointer, count: count)
    }

    /// Marks the buffer as modified in place (drops caches).
    func invalidateCaches() { plainCache = nil }

    public var description: String {
        let v = values.prefix(8).map { String(format: "%.4f", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(v)\(count > 8 ? ", …" : "")])"
    }
}
