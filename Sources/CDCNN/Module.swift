import CDCTensor

/// A non-trainable tensor kept in a module's state (BatchNorm's running statistics).
public final class Buffer: @unchecked Sendable {
    /// The current value; replaced or updated in place, never part of the gradient graph.
    public var tensor: Tensor
    public init(_ tensor: Tensor) { self.tensor = tensor }
}

/// An integer counter kept in a module's state (saved as int64, as PyTorch's
/// `num_batches_tracked`).
public final class Counter: @unchecked Sendable {
    public var value: Int
    public init(_ value: Int = 0) { self.value = value }
}

/// Base class of layers and models.
///
/// Parameters (`Tensor` properties), buffers (``Buffer``), counters (``Counter``) and child
/// modules (`Module` properties, optionals and arrays of modules) are found by reflection
/// and named by dotted paths in PyTorch's convention: `camelCase` property names become
/// `snake_case`, array elements are numbered.
///
///     final class MLP: Module {
///         let fc1 = Linear(4, 8), fc2 = Linear(8, 2)
///         override func forward(_ x: Tensor) -> Tensor { fc2(fc1(x).relu()) }
///     }
///     MLP().namedParameters().map(\.0)   // ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
open class Module: @unchecked Sendable {
    /// Training (true) or evaluation mode; set recursively with ``train(_:)``.
    public private(set) var training = true

    public init() {}

    /// The layer's computation.
    open func forward(_ x: Tensor) -> Tensor {
        fatalError("\(type(of: self)) does not implement forward(_:)")
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x) }

    /// Sets training mode on this module and every descendant; returns self.
    @discardableResult
    public func train(_ on: Bool = true) -> Self {
        training = on
        for (_, c) in children() { c.train(on) }
        return self
    }

    /// Evaluation mode (`train(false)`).
    @discardableResult
    public func eval() -> Self { train(false) }

    /// Properties of this module as reflected entries: (snake_case name, value).
    private func reflectedProperties() -> [(String, Any)] {
        var out: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var chain: [Mirror] = []
        while let m = mirror { chain.append(m); mirror = m.superclassMirror }
        for m in chain.reversed() {
            for child in m.children {
                guard var label = child.label else { continue }
                if label.hasPrefix("_") { label.removeFirst() }
                if label == "training" { continue }
                out.append((Module.snakeCase(label), child.value))
            }
        }
        return out
    }

    /// Direct child modules with their names; the elements of an array property are named
    /// `<property>.<index>`, as PyTorch names a `ModuleList`'s.
    open func children() -> [(String, Module)] {
        var out: [(String, Module)] = []
        for (name, value) in reflectedProperties() {
            if let m = value as? Module { out.append((name, m)) }   // also unwraps optionals
            else if let ms = value as? [Module] { for (i, m) in ms.enumerated() { out.append(("\(name).\(i)", m)) } }
        }
        return out
    }

    /// This module's own parameters (not its children's).
    open func ownParameters() -> [(String, Tensor)] {
        reflectedProperties().compactMap { name, value in
            if let t = value as? Tensor { return (name, t) }
            if let opt = value as? Tensor?, let t = opt { return (name, t) }
            return nil
        }
    }

    /// Every parameter with its dotted path, depth first in declaration order.
    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        var out = ownParameters().map { (prefix + $0.0, $0.1) }
        for (name, c) in children() { out += c.namedParameters(prefix: prefix + name + ".") }
        return out
    }

    /// Every parameter.
    public func parameters() -> [Tensor] { namedParameters().map(\.1) }

    /// Every buffer with its dotted path.
    public func namedBuffers(prefix: String = "") -> [(String, Buffer)] {
        var out: [(String, Buffer)] = reflectedProperties().compactMap { n, v in (v as? Buffer).map { (prefix + n, $0) } }
        for (name, c) in children() { out += c.namedBuffers(prefix: prefix + name + ".") }
        return out
    }

    /// Every counter with its dotted path.
    public func namedCounters(prefix: String = "") -> [(String, Counter)] {
        var out: [(String, Counter)] = reflectedProperties().compactMap { n, v in (v as? Counter).map { (prefix + n, $0) } }
        for (name, c) in children() { out += c.namedCounters(prefix: prefix + name + ".") }
        return out
    }

    /// Number of scalar parameters.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters() { p.grad = nil } }

    /// `camelCase` → `snake_case` (PyTorch's naming).
    static func snakeCase(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase { if !out.isEmpty { out.append("_") }; out.append(Character(ch.lowercased())) }
            else { out.append(ch) }
        }
        return out
    }
}
