import CDNNL

/// Batch normalisation over the channel dimension of `[N, C]`, `[N, C, L]` or `[N, C, H, W]`.
extension Tensor {
    /// Normalises each channel. In training mode the batch statistics are used and the running
    /// statistics updated in place (`running ← (1−momentum)·running + momentum·batch`, with the
    /// unbiased batch variance, as PyTorch); otherwise the running statistics are used.
    /// `fuseReLU` applies ReLU to the output in the same kernel.
    public static func batchNorm(_ x: Tensor, scale: Tensor, shift: Tensor, runningMean: Tensor, runningVar: Tensor,
                                 training: Bool, momentum: Float = 0.1, epsilon: Float = 1e-5, fuseReLU: Bool = false) -> Tensor {
        precondition(x.rank >= 2, "batchNorm: input \(x.shape) needs a channel dimension")
        let c = x.shape[1]
        for (name, t) in [("scale", scale), ("shift", shift), ("running mean", runningMean), ("running variance", runningVar)] {
            precondition(t.shape == [c], "batchNorm: \(name) has shape \(t.shape), expected [\(c)]")
        }
        let n = x.shape[0], spatial = x.count / Swift.max(n * c, 1)
        precondition(!training || n * spatial > 1, "batchNorm: training needs more than one value per channel, input \(x.shape)")
        // oneDNN sees 4-D (or 2-D) data: [N, C, H, W]; [N, C, L] is [N, C, 1, L].
        let dims = x.rank == 2 ? [n, c] : (x.rank == 3 ? [n, c, 1, x.shape[2]] : x.shape)
        let mean = Storage(count: c), variance = Storage(count: c)
        if !training {
            mean.pointer.update(from: runningMean.plain.pointer, count: c)
            variance.pointer.update(from: runningVar.plain.pointer, count: c)
        }
        let y: Tensor
        var saved: (Storage?, Storage, dnnl_memory_desc_t)? = nil
        let backend = Engine.backend  // the backward uses what the forward saved for it
        switch backend {
        case .onednn:
            let (out, ws, src, desc) = DNNLBatchNorm.forward(x: x, dims: dims, scale: scale, shift: shift, mean: mean,
                                                             variance: variance, epsilon: epsilon, training: training,
                                                             fuseReLU: fuseReLU)
            y = out
            saved = (ws, src, desc)
        case .reference:
            if training {
                ReferenceKernels.channelStats(x.plain.pointer, batch: n, channels: c, spatial: spatial,
                                              mean: mean.pointer, variance: variance.pointer)
            }
            y = Tensor.empty(x.shape)
            ReferenceKernels.batchNormForward(x.plain.pointer, batch: n, channels: c, spatial: spatial, mean: mean.pointer,
                                              variance: variance.pointer, scale: scale.plain.pointer, shift: shift.plain.pointer,
                                              epsilon: epsilon, output: y.storage.pointer)
            if fuseReLU { let p = y.storage.pointer; for i in 0..<y.count where p[i] < 0 { p[i] = 0 } }
        }
        if training {
            // Running statistics: plain buffers updated in place (never part of the graph).
            let rm = runningMean.plain.pointer, rv = runningVar.plain.pointer
            let unbias = Float(n * spatial) / Float(n * spatial - 1)
            for i in 0..<c {
                rm[i] = (1 - momentum) * rm[i] + momentum * mean.pointer[i]
                rv[i] = (1 - momentum) * rv[i] + momentum * variance.pointer[i] * unbias
            }
        }
        return y.recording(.batchNorm, [x, scale, shift]) { [unowned y] gOut in
            if !training {
                // Eval mode: an affine map per channel.
                var gy = gOut
                if fuseReLU { gy = Tensor.zipGrad(gOut, y) { g, v in v > 0 ? g : 0 } }
                let inv = Tensor((0..<c).map { 1 / (variance.pointer[$0] + epsilon).squareRoot() }, shape: [c])
                let bshape = [1, c] + [Int](repeating: 1, count: x.rank - 2)
                let gx = gy * (scale.detach() * inv).reshape(bshape)
                let xhat = (x.detach() - Tensor(mean, c).reshape(bshape)) * inv.reshape(bshape)
                let axes = [0] + Array(2..<x.rank)
                return [gx, (gy * xhat).sum(axes: axes), gy.sum(axes: axes)]
            }
            switch backend {
            case .onednn:
                let (ws, src, desc) = saved!
                let (gx, gs, gb) = DNNLBatchNorm.backward(x: src, shape: x.shape, dataDesc: desc, gradOutput: gOut, scale: scale, shift: shift,
                                                          mean: mean, variance: variance, workspace: ws, epsilon: epsilon,
                                                          fuseReLU: fuseReLU)
                return [gx, gs, gb]
            case .reference:
                var gy = gOut
                if fuseReLU { gy = Tensor.zipGrad(gOut, y) { g, v in v > 0 ? g : 0 } }
                let gx = Tensor.empty(x.shape), gs = Tensor.empty([c]), gb = Tensor.empty([c])
                ReferenceKernels.batchNormBackward(x.plain.pointer, gradOutput: gy.plain.pointer, batch: n, channels: c,
                                                   spatial: spatial, mean: mean.pointer, variance: variance.pointer,
                                                   scale: scale.plain.pointer, epsilon: epsilon, gradInput: gx.storage.pointer,
                                                   gradScale: gs.storage.pointer, gradShift: gb.storage.pointer)
                return [gx, gs, gb]
            }
        }
    }

    /// A [c] tensor copying the first `c` values of a storage.
    convenience init(_ storage: Storage, _ c: Int) {
        let s = Storage(count: c)
        s.pointer.update(from: storage.pointer, count: c)
        self.init(shape: [c], storage: s)
    }
}
