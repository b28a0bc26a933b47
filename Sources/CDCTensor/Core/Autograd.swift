import Foundation

/// Every operation the autograd recorder knows: each op that records a backward names itself
/// with one case (the raw value is the name ``Tensor/opName`` reports).
///
/// Ops declared outside the engine (``Tensor/withCustomGradient(_:inputs:backward:)``) all
/// record ``custom`` and keep their own label. The gradient-check tests hold one
/// finite-difference check per case and fail when a case has none, so an op added here
/// without a gradient check fails the tests.
public enum Op: String, CaseIterable, Sendable {
    // Elementwise binary ops (with broadcasting) and the fused residual join relu(a + b).
    case add, sub, mul, div, addRelu
    // Elementwise with a scalar, and negation.
    case addScalar, mulScalar, neg
    // Unary functions and activations.
    case exp, log, sqrt, relu, leakyRelu, tanh, sigmoid, clamp
    // Matrix products.
    case matmul, linear
    // Reductions.
    case sum, sumAxes
    // Shapes.
    case reshape, permute, concat, slice
    // Convolutions (1-D and 2-D, fused activation included), pooling (1-D, 2-D, global), batch norm.
    case conv, convTranspose, maxPool, avgPool, batchNorm
    // Losses and log-softmax.
    case logSoftmax, crossEntropy, mse
    // Identity forward whose backward scales the gradient.
    case gradientScale
    // A backward declared outside the engine with `withCustomGradient`.
    case custom
}

/// A recorded operation: the inputs it read and how to turn the gradient of its output into
/// gradients of those inputs.
final class GradFn {
    let op: Op
    /// What messages and ``Tensor/opName`` call it: the op's name, or a custom op's own label.
    let label: String
    let inputs: [Tensor]
    /// Maps d(loss)/d(output) to d(loss)/d(input) for each input (nil where none is needed).
    let backward: (Tensor) -> [Tensor?]

    init(_ op: Op, label: String? = nil, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) {
        self.op = op
        self.label = label ?? op.rawValue
        self.inputs = inputs
        self.backward = backward
    }
}

/// Global switches of the autograd recorder.
public enum Autograd {
    @TaskLocal static var isEnabled = true

    /// Runs `body` without recording operations (like `torch.no_grad()`).
    public static func noGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(false) { try body() }
    }

    /// Whether operations are being recorded right now.
    public static var enabled: Bool { isEnabled }
}

extension Tensor {
    /// Records `fn` as the producer of this tensor when recording is on and an input needs it.
    @discardableResult
    func recording(_ op: Op, label: String? = nil, _ inputs: [Tensor],
                   _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        guard Autograd.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return self }
        requiresGrad = true
        gradFn = GradFn(op, label: label, inputs, backward)
        return self
    }

    /// Whether this tensor is a leaf (not produced by a recorded op).
    public var isLeaf: Bool { gradFn == nil }

    /// The recorded op that produced this tensor (nil for leaves).
    public var op: Op? { gradFn?.op }

    /// Name of the op that produced this tensor: the ``Op`` case's raw value, a custom op's
    /// label, or "leaf" for leaves.
    public var opName: String { gradFn?.label ?? "leaf" }

    /// Back-propagates from this scalar: adds d(self)/d(leaf) into every leaf's `grad`.
    /// The graph is released afterwards (as PyTorch does without `retain_graph`).
    public func backward(_ seed: Tensor? = nil, retainGraph: Bool = false) {
        precondition(requiresGrad, "backward() on a tensor that does not require grad")
        let start = seed ?? {
            precondition(count == 1, "backward() without a seed needs a scalar, shape is \(shape)")
            return Tensor.ones(shape)
        }()
        // Topological order by iterative DFS.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !visited.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            if let fn = t.gradFn {
                for i in fn.inputs where i.requiresGrad && !visited.contains(ObjectIdentifier(i)) {
                    stack.append((i, false))
                }
            }
        }
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): start]
        Autograd.noGrad {
            for t in order.reversed() {
                guard let g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                guard let fn = t.gradFn else {
                    if let old = t.grad { t.grad = old + g } else { t.grad = g.isPlain ? g : g.copy() }
                    continue
                }
                let inputGrads = fn.backward(g)
                for (input, ig) in zip(fn.inputs, inputGrads) {
                    guard input.requiresGrad, let ig else { continue }
                    precondition(ig.shape == input.shape,
                                 "\(fn.label) backward produced grad \(ig.shape) for input \(input.shape)")
                    let key = ObjectIdentifier(input)
                    if let acc = grads[key] { grads[key] = acc + ig } else { grads[key] = ig }
                }
                if !retainGraph { t.gradFn = nil }
            }
        }
    }
}

extension Tensor {
    /// Declares `self` (computed outside the engine's ops) as a function of `inputs` with the
    /// given backward, for custom operations such as straight-through estimators. It records
    /// ``Op/custom``; `label` names it in messages and ``opName``.
    @discardableResult
    public func withCustomGradient(_ label: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        recording(.custom, label: label, inputs, backward)
    }

    /// The same values, but the gradient flowing back through it is multiplied by `scale`
    /// (`x.detach() + (x − x.detach())·scale` in one op).
    public func gradientScaled(by scale: Float) -> Tensor {
        let out = Tensor(shape: shape, storage: storage)
        out.blockedDesc = blockedDesc
        return out.recording(.gradientScale, [self]) { g in [scale == 1 ? g : g * scale] }
    }
}
