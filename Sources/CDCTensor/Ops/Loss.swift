import Foundation

/// Log-softmax, cross-entropy, mean squared error and dropout.
extension Tensor {
    /// log(softmax(x)) along the last axis, computed stably.
    public func logSoftmax() -> Tensor {
        precondition(rank >= 1, "logSoftmax needs at least one dimension")
        let n = shape[rank - 1], rows = count / Swift.max(n, 1)
        let out = Tensor.empty(shape)
        let px = plain.pointer, po = out.storage.pointer
        for r in 0..<rows {
            let row = px + r * n, o = po + r * n
            var m = -Float.infinity
            for j in 0..<n { m = Swift.max(m, row[j]) }
            var s: Float = 0
            for j in 0..<n { s += Foundation.exp(row[j] - m) }
            let lse = m + Foundation.log(s)
            for j in 0..<n { o[j] = row[j] - lse }
        }
        return out.recording(.logSoftmax, [self]) { [unowned out] g in
            // dx = g − softmax · Σ g
            let gx = Tensor.empty(out.shape)
            let pg = g.plain.pointer, py = out.storage.pointer, pd = gx.storage.pointer
            for r in 0..<rows {
                var s: Float = 0
                for j in 0..<n { s += pg[r * n + j] }
                for j in 0..<n { pd[r * n + j] = pg[r * n + j] - Foundation.exp(py[r * n + j]) * s }
            }
            return [gx]
        }
    }

    /// Mean cross-entropy of logits `[N, classes]` against integer labels.
    public static func crossEntropy(_ logits: Tensor, labels: [Int]) -> Tensor {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count,
                     "crossEntropy: logits \(logits.shape) do not match \(labels.count) labels")
        let k = logits.shape[1]
        precondition(labels.allSatisfy { $0 >= 0 && $0 < k }, "crossEntropy: a label is outside 0..<\(k)")
        let n = labels.count
        let lsm = logits.logSoftmax()
        let p = lsm.plain.pointer
        var loss: Float = 0
        for i in 0..<n { loss -= p[i * k + labels[i]] }
        let out = Tensor(scalar: loss / Float(n))
        return out.recording(.crossEntropy, [lsm]) { g in
            let gl = Tensor.zeros([n, k])
            let s = -g.item / Float(n)
            for i in 0..<n { gl.storage.pointer[i * k + labels[i]] = s }
            return [gl]
        }
    }

    /// Mean squared error over all elements (PyTorch's `MSELoss()`).
    public static func mse(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        precondition(prediction.shape == target.shape, "mse: shapes \(prediction.shape) and \(target.shape) differ")
        let n = prediction.count
        let pp = prediction.plain.pointer, pt = target.plain.pointer
        var acc: Double = 0
        for i in 0..<n { let d = Double(pp[i] - pt[i]); acc += d * d }
        let out = Tensor(scalar: Float(acc / Double(n)))
        return out.recording(.mse, [prediction, target]) { g in
            let scale = 2 * g.item / Float(n)
            let diff = Tensor.empty(prediction.shape)
            let pd = diff.storage.pointer
            Engine.parallelFor(n) { r in for i in r { pd[i] = scale * (pp[i] - pt[i]) } }
            return [prediction.requiresGrad ? diff : nil, target.requiresGrad ? -diff : nil]
        }
    }

    /// Zeroes each element with probability `p` and scales the rest by 1/(1−p) (training only).
    public func dropout(_ p: Float, training: Bool, generator: inout SeededGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout probability must be in [0, 1)")
        if !training || p == 0 { return self }
        let mask = Tensor.empty(shape)
        let pm = mask.storage.pointer, keep = 1 / (1 - p)
        for i in 0..<count { pm[i] = generator.nextUniform() < p ? 0 : keep }
        return self * mask
    }
}
