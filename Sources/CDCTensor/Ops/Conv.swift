/// Convolutions (1-D and 2-D, plain and transposed) with gradients.
extension Tensor {
    /// 2-D convolution of `x [N, C, H, W]` with `weight [O, C/groups, kh, kw]` (PyTorch's layout).
    /// `activation` is applied to the output inside the same primitive (ReLU or LeakyReLU).
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                              padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1,
                              activation: FusedActivation = .none) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "conv2d: input \(x.shape) and weight \(weight.shape) must be 4-D")
        let g = ConvGeometry(batch: x.shape[0], inChannels: x.shape[1], height: x.shape[2], width: x.shape[3],
                             outChannels: weight.shape[0], kernelH: weight.shape[2], kernelW: weight.shape[3],
                             strideH: stride.0, strideW: stride.1, padH: padding.0, padW: padding.1,
                             dilationH: dilation.0, dilationW: dilation.1, groups: groups)
        precondition(weight.shape[1] * groups == x.shape[1],
                     "conv2d: weight \(weight.shape) expects \(weight.shape[1] * groups) input channels, input has \(x.shape[1])")
        return convolution(x, weight: weight, bias: bias, geometry: g, transposed: false, activation: activation,
                           outShape: g.outputShape)
    }

    /// 1-D convolution of `x [N, C, L]` with `weight [O, C/groups, k]` (run as 2-D with height 1).
    public static func conv1d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                              dilation: Int = 1, groups: Int = 1, activation: FusedActivation = .none) -> Tensor {
        precondition(x.rank == 3 && weight.rank == 3, "conv1d: input \(x.shape) and weight \(weight.shape) must be 3-D")
        let g = ConvGeometry(batch: x.shape[0], inChannels: x.shape[1], height: 1, width: x.shape[2],
                             outChannels: weight.shape[0], kernelH: 1, kernelW: weight.shape[2],
                             strideW: stride, padW: padding, dilationW: dilation, groups: groups)
        precondition(weight.shape[1] * groups == x.shape[1],
                     "conv1d: weight \(weight.shape) expects \(weight.shape[1] * groups) input channels, input has \(x.shape[1])")
        return convolution(x, weight: weight, bias: bias, geometry: g, transposed: false, activation: activation,
                           outShape: [g.batch, g.outChannels, g.outWidth])
    }

    /// 2-D transposed convolution of `x [N, C, H, W]` with `weight [C, O/groups, kh, kw]`
    /// (PyTorch's ConvTranspose2d layout); output size `(H−1)·s − 2p + d·(k−1) + outputPadding + 1`.
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                                       padding: (Int, Int) = (0, 0), outputPadding: (Int, Int) = (0, 0),
                                       dilation: (Int, Int) = (1, 1), groups: Int = 1,
                                       activation: FusedActivation = .none) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && weight.shape[0] == x.shape[1],
                     "convTranspose2d: input \(x.shape) does not fit weight \(weight.shape)")
        let oh = (x.shape[2] - 1) * stride.0 - 2 * padding.0 + dilation.0 * (weight.shape[2] - 1) + outputPadding.0 + 1
        let ow = (x.shape[3] - 1) * stride.1 - 2 * padding.1 + dilation.1 * (weight.shape[3] - 1) + outputPadding.1 + 1
        precondition(outputPadding.0 < max(stride.0, dilation.0) && outputPadding.1 < max(stride.1, dilation.1),
                     "convTranspose2d: output padding must be smaller than stride or dilation")
        let g = ConvGeometry(batch: x.shape[0], inChannels: weight.shape[1] * groups, height: oh, width: ow,
                             outChannels: x.shape[1], kernelH: weight.shape[2], kernelW: weight.shape[3],
                             strideH: stride.0, strideW: stride.1, padH: padding.0, padW: padding.1,
                             dilationH: dilation.0, dilationW: dilation.1, groups: groups,
                             padBottom: padding.0 - outputPadding.0, padRight: padding.1 - outputPadding.1)
        return convolution(x, weight: weight, bias: bias, geometry: g, transposed: true, activation: activation,
                           outShape: g.inputShape)
    }

    /// 1-D transposed convolution of `x [N, C, L]` with `weight [C, O/groups, k]`.
    public static func convTranspose1d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
                                       outputPadding: Int = 0, dilation: Int = 1, groups: Int = 1,
                                       activation: FusedActivation = .none) -> Tensor {
        precondition(x.rank == 3 && weight.rank == 3 && weight.shape[0] == x.shape[1],
                     "convTranspose1d: input \(x.shape) does not fit weight \(weight.shape)")
        precondition(outputPadding < max(stride, dilation), "convTranspose1d: output padding must be smaller than stride or dilation")
        let ol = (x.shape[2] - 1) * stride - 2 * padding + dilation * (weight.shape[2] - 1) + outputPadding + 1
        let g = ConvGeometry(batch: x.shape[0], inChannels: weight.shape[1] * groups, height: 1, width: ol,
                             outChannels: x.shape[1], kernelH: 1, kernelW: weight.shape[2], strideW: stride,
                             padW: padding, dilationW: dilation, groups: groups, padBottom: 0,
                             padRight: padding - outputPadding)
        return convolution(x, weight: weight, bias: bias, geometry: g, transposed: true, activation: activation,
                           outShape: [g.batch, g.inChannels, ol])
    }

    /// Shared implementation: `g` describes the convolution (for `transposed`, the convolution
    /// whose data gradient this op computes).
    static func convolution(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry, transposed: Bool,
                            activation: FusedActivation, outShape: [Int]) -> Tensor {
        if let problem = g.validate() { preconditionFailure("convolution: \(problem)") }
        // oneDNN 2.6 runs a post-op on its deconvolution kernel 5–10× slower than the
        // deconvolution itself (measured: 11 ms vs 1.2 ms + 0.3 ms for a separate pass), so a
        // transposed convolution applies its activation as a separate op.
        if transposed, activation != .none, Engine.backend == .onednn {
            let y = convolution(x, weight: weight, bias: bias, geometry: g, transposed: true, activation: .none, outShape: outShape)
            switch activation {
            case .relu: return y.relu()
            case .leakyRelu(let s): return y.leakyRelu(s)
            case .tanh: return y.tanh()
            case .none: return y
            }
        }
        let outChannels = transposed ? g.inChannels : g.outChannels
        if let bias { precondition(bias.shape == [outChannels], "convolution: bias \(bias.shape) should be [\(outChannels)]") }
        let inShape = x.shape
        // One input channel and a wide kernel (M5's first layer): im2col + GEMM, channels-last
        // output (oneDNN 2.6 has no fast kernel for it; see WideKernelConv1d).
        if !transposed, Engine.backend == .onednn, WideKernelConv1d.applies(g) {
            if activation != .none {
                let y = convolution(x, weight: weight, bias: bias, geometry: g, transposed: false, activation: .none,
                                    outShape: outShape)
                switch activation {
                case .relu: return y.relu()
                case .leakyRelu(let s): return y.leakyRelu(s)
                case .tanh: return y.tanh()
                case .none: return y
                }
            }
            let (y, cols) = WideKernelConv1d.forward(g, x: x, weight: weight, bias: bias, outShape: outShape)
            let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
            return y.recording(.conv, inputs) { gy in
                let (gx, gw, gb) = WideKernelConv1d.backward(g, gradOutput: gy, cols: cols, weight: weight, withBias: bias != nil,
                                                             needInput: x.requiresGrad, inShape: inShape)
                return bias == nil ? [gx, gw] : [gx, gw, gb]
            }
        }
        let y: Tensor
        var savedSrc: (Storage, dnnl_memory_desc_t)? = nil
        let backend = Engine.backend  // the backward uses what the forward saved for it
        let precision = Engine.precision  // and runs in the forward's precision
        switch backend {
        case .onednn:
            let (out, src, srcMD) = DNNLConv.forward(g, transposed: transposed, x: x, weight: weight, bias: bias,
                                                     activation: activation, outShape: outShape, precision: precision)
            y = out
            savedSrc = (src, srcMD)
        case .reference:
            y = Tensor.empty(outShape)
            let px = x.plain.pointer, pw = weight.plain.pointer, py = y.storage.pointer
            if transposed {
                ReferenceKernels.convBackwardData(g, gradOutput: px, weight: pw, gradInput: py)
                if let bias { addChannelBias(py, bias.plain.pointer, batch: g.batch, channels: outChannels,
                                             spatial: g.height * g.width) }
            } else {
                ReferenceKernels.convForward(g, input: px, weight: pw, bias: bias?.plain.pointer, output: py)
            }
            if activation != .none {
                for i in 0..<y.count { py[i] = activation.apply(py[i]) }
            }
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return y.recording(transposed ? .convTranspose : .conv, inputs) { [unowned y] gOut in
            var gy = gOut
            if activation != .none {
                gy = Tensor.activationBackward(gOut, output: y, activation: activation)
            }
            var gx: Tensor? = nil, gw: Tensor? = nil, gb: Tensor? = nil
            switch backend {
            case .onednn:
                if x.requiresGrad {
                    gx = DNNLConv.backwardData(g, transposed: transposed, gradOutput: gy, weight: weight, inShape: inShape,
                                               precision: precision)
                }
                if weight.requiresGrad || (bias?.requiresGrad ?? false) {
                    let src = savedSrc ?? (x.plain, DNNL.plainDesc(DNNLConv.shapes(g, transposed: transposed).src))
                    (gw, gb) = DNNLConv.backwardWeights(g, transposed: transposed, src: src.0, srcDesc: src.1,
                                                        gradOutput: gy, weightShape: weight.shape, withBias: bias != nil,
                                                        precision: precision)
                }
            case .reference:
                let pg = gy.plain.pointer, px = x.plain.pointer
                if x.requiresGrad {
                    let t = Tensor.empty(inShape)
                    if transposed {
                        ReferenceKernels.convForward(g, input: pg, weight: weight.plain.pointer, bias: nil, output: t.storage.pointer)
                    } else {
                        ReferenceKernels.convBackwardData(g, gradOutput: pg, weight: weight.plain.pointer, gradInput: t.storage.pointer)
                    }
                    gx = t
                }
                let w = Tensor.empty(weight.shape)
                if transposed {
                    ReferenceKernels.convBackwardWeights(g, input: pg, gradOutput: px, gradWeight: w.storage.pointer, gradBias: nil)
                    if bias != nil {
                        let b = Tensor.zeros([outChannels])
                        sumChannels(pg, into: b.storage.pointer, batch: g.batch, channels: outChannels, spatial: g.height * g.width)
                        gb = b
                    }
                } else {
                    let b = bias != nil ? Tensor.empty([outChannels]) : nil
                    ReferenceKernels.convBackwardWeights(g, input: px, gradOutput: pg, gradWeight: w.storage.pointer,
                                                         gradBias: b?.storage.pointer)
                    gb = b
                }
                gw = w
            }
            return bias == nil ? [gx, gw] : [gx, gw, gb]
        }
    }

    static func addChannelBias(_ p: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int) {
        for n in 0..<batch { for c in 0..<channels { let base = (n * channels + c) * spatial
            for k in 0..<spatial { p[base + k] += b[c] } } }
    }

    static func sumChannels(_ p: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int) {
        for n in 0..<batch { for c in 0..<channels { let base = (n * channels + c) * spatial
            var s: Float = 0
            for k in 0..<spatial { s += p[base + k] }
            out[c] += s } }
    }
}

import CDNNL
