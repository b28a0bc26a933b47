import CDNNL

/// Max, average and global average pooling.
extension Tensor {
    /// Max pooling over `x [N, C, H, W]` (padding counts as −∞; floor mode).
    public func maxPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) -> Tensor {
        pool2d(max: true, kernel: kernel, stride: stride ?? kernel, padding: padding, countIncludePad: true)
    }

    /// Average pooling over `x [N, C, H, W]`; like PyTorch, padded zeros count in the divisor
    /// unless `countIncludePad` is false.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                          countIncludePad: Bool = true) -> Tensor {
        pool2d(max: false, kernel: kernel, stride: stride ?? kernel, padding: padding, countIncludePad: countIncludePad)
    }

    /// Max pooling over `x [N, C, L]`.
    public func maxPool1d(kernel: Int, stride: Int? = nil, padding: Int = 0) -> Tensor {
        precondition(rank == 3, "maxPool1d: input \(shape) must be [N, C, L]")
        return pool2d(max: true, kernel: (1, kernel), stride: (1, stride ?? kernel), padding: (0, padding),
                      countIncludePad: true, logical1D: true)
    }

    /// Average pooling over `x [N, C, L]`.
    public func avgPool1d(kernel: Int, stride: Int? = nil, padding: Int = 0, countIncludePad: Bool = true) -> Tensor {
        precondition(rank == 3, "avgPool1d: input \(shape) must be [N, C, L]")
        return pool2d(max: false, kernel: (1, kernel), stride: (1, stride ?? kernel), padding: (0, padding),
                      countIncludePad: countIncludePad, logical1D: true)
    }

    /// Mean over all spatial positions: `[N, C, H, W]` or `[N, C, L]` → `[N, C]`.
    public func globalAvgPool() -> Tensor {
        precondition(rank == 3 || rank == 4, "globalAvgPool: input \(shape) must be [N, C, L] or [N, C, H, W]")
        let h = rank == 4 ? shape[2] : 1, w = shape[rank - 1]
        let pooled = pool2d(max: false, kernel: (h, w), stride: (h, w), padding: (0, 0), countIncludePad: true,
                            logical1D: rank == 3)
        return pooled.reshape([shape[0], shape[1]])
    }

    func pool2d(max: Bool, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), countIncludePad: Bool,
                logical1D: Bool = false) -> Tensor {
        precondition(logical1D ? rank == 3 : rank == 4, "pooling: input \(shape) has the wrong rank")
        let (h, w) = logical1D ? (1, shape[2]) : (shape[2], shape[3])
        let g = PoolGeometry(batch: shape[0], channels: shape[1], height: h, width: w, kernelH: kernel.0, kernelW: kernel.1,
                             strideH: stride.0, strideW: stride.1, padH: padding.0, padW: padding.1)
        precondition(kernel.0 >= 1 && kernel.1 >= 1 && stride.0 >= 1 && stride.1 >= 1 && g.outHeight >= 1 && g.outWidth >= 1,
                     "pooling: kernel \(kernel) stride \(stride) padding \(padding) do not fit input \(shape)")
        precondition(padding.0 * 2 <= kernel.0 && padding.1 * 2 <= kernel.1, "pooling: padding must be at most half the kernel")
        let outShape = logical1D ? [g.batch, g.channels, g.outWidth] : g.outputShape
        let inShape = shape
        let y: Tensor
        var saved: (Storage?, dnnl_memory_desc_t)? = nil
        let backend = Engine.backend  // the backward uses what the forward saved for it
        switch backend {
        case .onednn:
            let (out, ws, srcMD) = DNNLPool.forward(g, max: max, countIncludePad: countIncludePad, x: self, outShape: outShape)
            y = out
            saved = (ws, srcMD)
        case .reference:
            y = Tensor.empty(outShape)
            if max { ReferenceKernels.maxPoolForward(g, input: plain.pointer, output: y.storage.pointer) }
            else { ReferenceKernels.avgPoolForward(g, countIncludePad: countIncludePad, input: plain.pointer, output: y.storage.pointer) }
        }
        return y.recording(max ? .maxPool : .avgPool, [self]) { gy in
            switch backend {
            case .onednn:
                let s = saved ?? (nil, DNNL.plainDesc(g.inputShape))
                return [DNNLPool.backward(g, max: max, countIncludePad: countIncludePad, srcDesc: s.1, workspace: s.0,
                                          gradOutput: gy, inShape: inShape)]
            case .reference:
                let gx = Tensor.empty(inShape)
                if max {
                    ReferenceKernels.maxPoolBackward(g, input: self.plain.pointer, gradOutput: gy.plain.pointer, gradInput: gx.storage.pointer)
                } else {
                    ReferenceKernels.avgPoolBackward(g, countIncludePad: countIncludePad, gradOutput: gy.plain.pointer,
                                                     gradInput: gx.storage.pointer)
                }
                return [gx]
            }
        }
    }
}
