import CDCTensor

/// Updates parameters in place from their gradients.
public protocol Optimizer: AnyObject {
    /// The parameters being optimised.
    var parameters: [Tensor] { get }
    /// Current learning rate (schedules set it before each step).
    var learningRate: Float { get set }
    /// One update from the current gradients (parameters without a gradient are skipped).
    func step()
    /// The optimizer's per-parameter state (momentum buffers, moment estimates, step counts),
    /// named `<parameter index>.<slot>` as PyTorch's optimizer `state_dict` indexes them.
    func stateTensors() -> [String: Tensor]
    /// Restores state saved by `stateTensors()` (for resuming a training run).
    func loadStateTensors(_ state: [String: Tensor]) throws
}

/// Why optimizer state could not be restored.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let description: String
}

extension Optimizer {
    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.grad = nil } }
}

/// Per-parameter state slots (momentum buffers and the like), allocated on first use.
final class Slots {
    private var slots: [ObjectIdentifier: [Storage]] = [:]
    func get(_ p: Tensor, count: Int) -> [Storage] {
        if let s = slots[ObjectIdentifier(p)] { return s }
        let s = (0..<count).map { _ in Storage(count: p.count, repeating: 0) }
        slots[ObjectIdentifier(p)] = s
        return s
    }
    func existing(_ p: Tensor) -> [Storage]? { slots[ObjectIdentifier(p)] }

    /// Slot tensors by "<index>.<name>" for the parameters that have state.
    func export(_ parameters: [Tensor], names: [String]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (i, p) in parameters.enumerated() {
            guard let s = existing(p) else { continue }
            for (name, storage) in zip(names, s) {
                let t = Tensor.empty(p.shape)
                t.mutablePointer.update(from: storage.pointer, count: p.count)
                out["\(i).\(name)"] = t
            }
        }
        return out
    }

    /// Restores slots exported by `export`; every tensor must fit its parameter.
    func load(_ state: [String: Tensor], _ parameters: [Tensor], names: [String]) throws {
        for (i, p) in parameters.enumerated() {
            let found = names.map { state["\(i).\($0)"] }
            if found.allSatisfy({ $0 == nil }) { continue }
            let storages = try zip(names, found).map { name, t -> Storage in
                guard let t, t.shape == p.shape else {
                    throw OptimizerStateError(description: "optimizer state '\(i).\(name)' is missing or does not fit parameter \(i) of shape \(p.shape)")
                }
                let s = Storage(count: p.count)
                s.pointer.update(from: t.plain.pointer, count: p.count)
                return s
            }
            slots.removeValue(forKey: ObjectIdentifier(p))
            let dst = get(p, count: names.count)
            for (d, s) in zip(dst, storages) { d.pointer.update(from: s.pointer, count: p.count) }
        }
    }
}

/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay
/// (PyTorch's `torch.optim.SGD` update rule, dampening 0).
public final class SGD: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public let momentum: Float, nesterov: Bool, weightDecay: Float
    private let slots = Slots()
    private var started = Set<ObjectIdentifier>()

    public init(_ parameters: [Tensor], learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        precondition(!nesterov || momentum > 0, "SGD: Nesterov momentum needs momentum > 0")
        self.parameters = parameters; self.learningRate = learningRate
        self.momentum = momentum; self.nesterov = nesterov; self.weightDecay = weightDecay
    }

    public func stateTensors() -> [String: Tensor] { slots.export(parameters, names: ["momentum_buffer"]) }

    public func loadStateTensors(_ state: [String: Tensor]) throws {
        try slots.load(state, parameters, names: ["momentum_buffer"])
        for p in parameters where slots.existing(p) != nil { started.insert(ObjectIdentifier(p)) }
    }

    public func step() {
        for p in parameters {
            guard let g = p.grad else { continue }
            let w = p.plain.pointer, gp = g.plain.pointer, n = p.count
            let (lr, mu, wd, nest) = (learningRate, momentum, weightDecay, nesterov)
            if mu == 0 {
                Engine.parallelFor(n) { r in for i in r { w[i] -= lr * (gp[i] + wd * w[i]) } }
                continue
            }
            let buf = slots.get(p, count: 1)[0].pointer
            let first = started.insert(ObjectIdentifier(p)).inserted
            Engine.parallelFor(n) { r in
                for i in r {
                    let d = gp[i] + wd * w[i]
                    let b = first ? d : mu * buf[i] + d
                    buf[i] = b
                    w[i] -= lr * (nest ? d + mu * b : b)
                }
            }
        }
    }
}

/// Adam (Kingma & Ba), with L2 weight decay added to the gradient as in `torch.optim.Adam`;
/// with `decoupledWeightDecay` it is AdamW (`torch.optim.AdamW`).
public class Adam: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    let decoupled: Bool
    private let slots = Slots()
    private var steps: [ObjectIdentifier: Int] = [:]

    public init(_ parameters: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.parameters = parameters; self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        self.decoupled = false
    }

    init(_ parameters: [Tensor], learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float,
         decoupled: Bool) {
        self.parameters = parameters; self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        self.decoupled = decoupled
    }

    public func stateTensors() -> [String: Tensor] {
        var out = slots.export(parameters, names: ["exp_avg", "exp_avg_sq"])
        for (i, p) in parameters.enumerated() {
            if let t = steps[ObjectIdentifier(p)] { out["\(i).step"] = Tensor(scalar: Float(t)) }
        }
        return out
    }

    public func loadStateTensors(_ state: [String: Tensor]) throws {
        try slots.load(state, parameters, names: ["exp_avg", "exp_avg_sq"])
        for (i, p) in parameters.enumerated() {
            if let t = state["\(i).step"] { steps[ObjectIdentifier(p)] = Int(t.item) }
        }
    }

    public func step() {
        for p in parameters {
            guard let g = p.grad else { continue }
            let t = (steps[ObjectIdentifier(p)] ?? 0) + 1
            steps[ObjectIdentifier(p)] = t
            let s = slots.get(p, count: 2)
            let m = s[0].pointer, v = s[1].pointer, w = p.plain.pointer, gp = g.plain.pointer
            let (b1, b2, eps, lr, wd, dec) = (beta1, beta2, epsilon, learningRate, weightDecay, decoupled)
            let c1 = 1 - Float(Double(b1).power(t)), c2 = 1 - Float(Double(b2).power(t))
            let stepSize = lr / c1, c2root = c2.squareRoot()
            Engine.parallelFor(p.count) { r in
                for i in r {
                    var gi = gp[i]
                    if dec { w[i] *= 1 - lr * wd } else { gi += wd * w[i] }
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    w[i] -= stepSize * m[i] / (v[i].squareRoot() / c2root + eps)
                }
            }
        }
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), default decay 0.01 as PyTorch.
public final class AdamW: Adam {
    public override init(_ parameters: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        super.init(parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                   weightDecay: weightDecay, decoupled: true)
    }
}

extension Double {
    func power(_ n: Int) -> Double { var r = 1.0; for _ in 0..<n { r *= self }; return r }
}

/// Scales all gradients together so that their joint L2 norm is at most `maxNorm`;
/// returns the norm before clipping (as `torch.nn.utils.clip_grad_norm_`).
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    var total: Double = 0
    for p in parameters { if let g = p.grad { let q = g.plain.pointer; for i in 0..<g.count { total += Double(q[i] * q[i]) } } }
    let norm = Float(total.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        // New tensors: gradients may be shared between parameters, so never scale in place.
        for p in parameters { if let g = p.grad { p.grad = Autograd.noGrad { g * coef } } }
    }
    return norm
}
