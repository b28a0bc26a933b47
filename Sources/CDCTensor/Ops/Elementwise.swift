/// Elementwise arithmetic with broadcasting, unary functions and activations.
extension Tensor {
    // MARK: - Binary kernels

    /// Applies `f` elementwise to broadcast `a` and `b` into a new tensor.
    static func binaryKernel(_ a: Tensor, _ b: Tensor, _ name: String, dnnl: dnnl_alg_kind_t? = nil,
                             _ f: (Float, Float) -> Float) -> Tensor {
        if let alg = dnnl, a.shape == b.shape, a.count >= DNNLElementwise.threshold, Engine.backend == .onednn {
            return DNNLElementwise.binary(alg, a, b)
        }
        // Same blocked layout: operate on the raw buffers and keep the layout.
        if let da = a.blockedDesc, let db = b.blockedDesc, a.shape == b.shape,
           DNNL.sameDesc(da, db), a.storage.count == a.count {
            let out = Tensor(shape: a.shape, blockedStorage: Storage(count: a.storage.count), desc: da)
            let pa = a.storage.pointer, pb = b.storage.pointer, po = out.storage.pointer
            Engine.parallelFor(a.count) { r in for i in r { po[i] = f(pa[i], pb[i]) } }
            return out
        }
        guard let shape = Broadcast.shape(a.shape, b.shape) else {
            preconditionFailure("\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = Tensor.empty(shape)
        let pa = a.plain.pointer, pb = b.plain.pointer, po = out.storage.pointer
        if a.shape == b.shape {
            Engine.parallelFor(out.count) { r in for i in r { po[i] = f(pa[i], pb[i]) } }
        } else if b.count == 1 {
            let s = pb[0]
            Engine.parallelFor(out.count) { r in for i in r { po[i] = f(pa[i], s) } }
        } else if a.count == 1 {
            let s = pa[0]
            Engine.parallelFor(out.count) { r in for i in r { po[i] = f(s, pb[i]) } }
        } else {
            let sa = Broadcast.broadcastStrides(a.shape, to: shape)
            let sb = Broadcast.broadcastStrides(b.shape, to: shape)
            Broadcast.forEachRun(shape, sa, sb) { o, oa, ob, n, ia, ib in
                if ia == 1 && ib == 1 {
                    for j in 0..<n { po[o + j] = f(pa[oa + j], pb[ob + j]) }
                } else {
                    for j in 0..<n { po[o + j] = f(pa[oa + j * ia], pb[ob + j * ib]) }
                }
            }
        }
        return out
    }

    /// Sums `self` over broadcast dimensions so that the result has `shape`
    /// (the backward of broadcasting).
    public func sumToShape(_ target: [Int]) -> Tensor {
        if target == shape { return self }
        let out = Tensor.zeros(target)
        let st = Broadcast.broadcastStrides(target, to: shape)
        let zero = [Int](repeating: 0, count: shape.count)
        let pg = plain.pointer, po = out.storage.pointer
        Broadcast.forEachRun(shape, st, zero) { o, ot, _, n, it, _ in
            if it == 0 {
                var s: Float = 0
                for j in 0..<n { s += pg[o + j] }
                po[ot] += s
            } else {
                for j in 0..<n { po[ot + j * it] += pg[o + j] }
            }
        }
        return out
    }

    // MARK: - Binary ops

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        binaryKernel(a, b, "add", dnnl: dnnl_binary_add, +).recording(.add, [a, b]) { g in
            [g.sumToShape(a.shape), g.sumToShape(b.shape)]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        binaryKernel(a, b, "sub", dnnl: dnnl_binary_sub, -).recording(.sub, [a, b]) { g in
            [g.sumToShape(a.shape), b.requiresGrad ? (-g).sumToShape(b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        binaryKernel(a, b, "mul", dnnl: dnnl_binary_mul, *).recording(.mul, [a, b]) { g in
            [a.requiresGrad ? (g * b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (g * a).sumToShape(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binaryKernel(a, b, "div", dnnl: dnnl_binary_div, /).recording(.div, [a, b]) { g in
            [a.requiresGrad ? (g / b).sumToShape(a.shape) : nil,
             b.requiresGrad ? (-(g * a) / (b * b)).sumToShape(b.shape) : nil]
        }
    }

    public static func + (a: Tensor, s: Float) -> Tensor {
        a.map(.addScalar, { $0 + s }, forward: .init(alg: dnnl_eltwise_linear, alpha: 1, beta: s)) { g, _, _ in g }
    }
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    public static func * (a: Tensor, s: Float) -> Tensor {
        a.map(.mulScalar, { $0 * s }, forward: .init(alg: dnnl_eltwise_linear, alpha: s)) { g, _, _ in g * s }
    }
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    public static func - (s: Float, a: Tensor) -> Tensor { (-a) + s }
    public static prefix func - (a: Tensor) -> Tensor {
        a.map(.neg, { -$0 }, forward: .init(alg: dnnl_eltwise_linear, alpha: -1)) { g, _, _ in -g }
    }

    /// relu(a + b) in one pass (a residual connection's join).
    public static func addRelu(_ a: Tensor, _ b: Tensor) -> Tensor {
        guard a.shape == b.shape, a.count >= DNNLElementwise.threshold, Engine.backend == .onednn else { return (a + b).relu() }
        let out = DNNLElementwise.binary(dnnl_binary_add, a, b, relu: true)
        return out.recording(.addRelu, [a, b]) { [unowned out] g in
            let gx = DNNLElementwise.backward(.init(alg: dnnl_eltwise_relu_use_dst_for_bwd), data: out, gradOutput: g)
            return [gx, gx]
        }
    }

    /// The gradient through a fused activation, from its output `y` (ReLU and LeakyReLU with
    /// a non-negative slope keep the sign, tanh′ = 1 − y²).
    static func activationBackward(_ g: Tensor, output y: Tensor, activation: FusedActivation) -> Tensor {
        let big = g.count >= DNNLElementwise.threshold && Engine.backend == .onednn
        switch activation {
        case .none:
            return g
        case .tanh:
            if big { return DNNLElementwise.backward(.init(alg: dnnl_eltwise_tanh_use_dst_for_bwd), data: y, gradOutput: g) }
            return zipGrad(g, y) { g, v in g * (1 - v * v) }
        case .relu, .leakyRelu:
            let slope: Float
            if case .leakyRelu(let s) = activation { slope = s } else { slope = 0 }
            precondition(slope >= 0, "a fused LeakyReLU needs a non-negative slope")
            if big { return DNNLElementwise.backward(.init(alg: dnnl_eltwise_relu_use_dst_for_bwd, alpha: slope), data: y, gradOutput: g) }
            return zipGrad(g, y) { g, v in v > 0 ? g : g * slope }
        }
    }

    // MARK: - Unary ops

    /// Applies `f` to every element (layout kept), recorded as `op`; `derivative(gradOut, input,
    /// output)` gives the input gradient. Large tensors run `forward` / `backward` on oneDNN when given
    /// (`backwardUsesOutput`: the backward algorithm reads the output instead of the input).
    func map(_ op: Op, _ f: (Float) -> Float, forward: DNNLElementwise.Function? = nil,
             backward: DNNLElementwise.Function? = nil, backwardUsesOutput: Bool = false,
             derivative: @escaping (Tensor, Tensor, Tensor) -> Tensor) -> Tensor {
        let backend = Engine.backend
        let useDNNL = count >= DNNLElementwise.threshold && backend == .onednn
        let out: Tensor
        if useDNNL, let fwd = forward {
            out = DNNLElementwise.forward(fwd, self)
        } else {
            if let d = blockedDesc, storage.count == count {
                out = Tensor(shape: shape, blockedStorage: Storage(count: count), desc: d)
            } else {
                out = Tensor.empty(shape)
            }
            let pi = (blockedDesc != nil && storage.count == count) ? storage.pointer : plain.pointer
            let po = out.storage.pointer
            Engine.parallelFor(count) { r in for i in r { po[i] = f(pi[i]) } }
        }
        return out.recording(op, [self]) { [unowned out] g in
            if let bwd = backward, g.count >= DNNLElementwise.threshold, backend == .onednn {
                return [DNNLElementwise.backward(bwd, data: backwardUsesOutput ? out : self, gradOutput: g)]
            }
            return [derivative(g, self, out)]
        }
    }

    /// Elementwise combination of the gradient with a saved tensor, for activation backward.
    static func zipGrad(_ g: Tensor, _ saved: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        binaryKernel(g, saved, "grad", f)
    }

    public func exp() -> Tensor {
        map(.exp, { Foundation.exp($0) }, forward: .init(alg: dnnl_eltwise_exp),
            backward: .init(alg: dnnl_eltwise_exp_use_dst_for_bwd), backwardUsesOutput: true) { g, _, y in g * y }
    }
    public func log() -> Tensor {
        map(.log, { Foundation.log($0) }) { g, x, _ in g / x }
    }
    public func sqrt() -> Tensor {
        map(.sqrt, { $0.squareRoot() }) { g, _, y in Tensor.zipGrad(g, y) { g, y in g * 0.5 / y } }
    }
    public func square() -> Tensor { self * self }

    /// max(x, 0).
    public func relu() -> Tensor {
        map(.relu, { $0 > 0 ? $0 : 0 }, forward: .init(alg: dnnl_eltwise_relu),
            backward: .init(alg: dnnl_eltwise_relu_use_dst_for_bwd), backwardUsesOutput: true) { g, _, y in Tensor.zipGrad(g, y) { g, y in y > 0 ? g : 0 } }
    }
    /// x for x > 0, slope·x otherwise.
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        map(.leakyRelu, { $0 > 0 ? $0 : $0 * slope }, forward: .init(alg: dnnl_eltwise_relu, alpha: slope),
            backward: .init(alg: dnnl_eltwise_relu, alpha: slope)) { g, x, _ in
            Tensor.zipGrad(g, x) { g, x in x > 0 ? g : g * slope }
        }
    }
    public func tanh() -> Tensor {
        map(.tanh, { Foundation.tanh($0) }, forward: .init(alg: dnnl_eltwise_tanh),
            backward: .init(alg: dnnl_eltwise_tanh_use_dst_for_bwd), backwardUsesOutput: true) { g, _, y in Tensor.zipGrad(g, y) { g, y in g * (1 - y * y) } }
    }
    public func sigmoid() -> Tensor {
        map(.sigmoid, { 1 / (1 + Foundation.exp(-$0)) }, forward: .init(alg: dnnl_eltwise_logistic),
            backward: .init(alg: dnnl_eltwise_logistic_use_dst_for_bwd), backwardUsesOutput: true) { g, _, y in
            Tensor.zipGrad(g, y) { g, y in g * y * (1 - y) }
        }
    }
    /// Clamps to [low, high]; the gradient is zero outside.
    public func clamp(_ low: Float, _ high: Float) -> Tensor {
        map(.clamp, { Swift.min(Swift.max($0, low), high) }) { g, x, _ in
            Tensor.zipGrad(g, x) { g, x in (x >= low && x <= high) ? g : 0 }
        }
    }
}

import CDNNL
import Foundation
