import CDNNL
import Foundation

/// An activation applied to a convolution's output inside the same oneDNN primitive.
public enum FusedActivation: Hashable, Sendable {
    case none
    case relu
    case leakyRelu(Float)
    case tanh

    /// The oneDNN post-op (eltwise algorithm and alpha), nil for none.
    var postOp: (dnnl_alg_kind_t, Float)? {
        switch self {
        case .none: return nil
        case .relu: return (dnnl_eltwise_relu, 0)
        case .leakyRelu(let s): return (dnnl_eltwise_relu, s)
        case .tanh: return (dnnl_eltwise_tanh, 0)
        }
    }

    /// Key for primitive caches.
    var key: [Int] {
        switch self {
        case .none: return []
        case .relu: return [1, 0]
        case .leakyRelu(let s): return [1, Int(s.bitPattern)]
        case .tanh: return [2]
        }
    }

    /// The function itself, for the reference path.
    func apply(_ v: Float) -> Float {
        switch self {
        case .none: return v
        case .relu: return max(v, 0)
        case .leakyRelu(let s): return v > 0 ? v : v * s
        case .tanh: return Foundation.tanh(v)
        }
    }
}

/// Convolution and transposed convolution (deconvolution) on oneDNN primitives.
///
/// `g` always describes the *convolution*: for a transposed convolution its input is
/// `g.outputShape` and its output `g.inputShape`, and the weight has PyTorch's
/// ConvTranspose layout `[g.outChannels, g.inPerGroup, kh, kw]` (= the conv weight).
enum DNNLConv {
    struct Shapes {
        var src: [Int], dst: [Int], weights: [Int], plainWeights: dnnl_memory_desc_t, bias: [Int]
    }

    static func shapes(_ g: ConvGeometry, transposed: Bool) -> Shapes {
        let k = g.kernelH * g.kernelW
        if !transposed {
            let w = g.groups == 1 ? [g.outChannels, g.inChannels, g.kernelH, g.kernelW]
                                  : [g.groups, g.outPerGroup, g.inPerGroup, g.kernelH, g.kernelW]
            return Shapes(src: g.inputShape, dst: g.outputShape, weights: w, plainWeights: DNNL.plainDesc(w),
                          bias: [g.outChannels])
        }
        // Deconvolution: oneDNN weights are (G,) OC, IC, kh, kw with OC = g.inChannels (per group),
        // IC = g.outChannels (per group); PyTorch stores (IC, OC/G, kh, kw).
        let (ocg, icg) = (g.inPerGroup, g.outPerGroup)
        let w: [Int], strides: [Int]
        if g.groups == 1 {
            w = [ocg, icg, g.kernelH, g.kernelW]; strides = [k, ocg * k, g.kernelW, 1]
        } else {
            w = [g.groups, ocg, icg, g.kernelH, g.kernelW]; strides = [icg * ocg * k, k, ocg * k, g.kernelW, 1]
        }
        return Shapes(src: g.outputShape, dst: g.inputShape, weights: w,
                      plainWeights: DNNL.stridedDesc(w, strides), bias: [g.inChannels])
    }

    /// Descriptor for a data tensor of the convolution. By default "any" (the primitive
    /// chooses a blocked layout), except, measured on oneDNN 2.6 (AVX-512):
    /// * a side with fewer than 16 channels (images, the decoder's output) stays row-major —
    ///   blocking it pads 1 channel to 16 and does 16× the work;
    /// * grouped convolutions with fewer than 16 channels per group use channels-last — the
    ///   narrow blocking oneDNN picks otherwise has no fast weight-gradient kernel and no fast
    ///   batch-norm kernel.
    static func dataDesc(_ dims: [Int], _ g: ConvGeometry) -> dnnl_memory_desc_t {
        if dims[1] < 16 { return DNNL.plainDesc(dims) }
        if g.groups > 1 && (g.inPerGroup < 16 || g.outPerGroup < 16) && dims.count == 4 {
            return DNNL.tagDesc(dims, dnnl_nhwc)
        }
        return DNNL.anyDesc(dims)
    }

    private static func geometryInts(_ g: ConvGeometry, _ transposed: Bool) -> [Int] {
        [g.batch, g.inChannels, g.height, g.width, g.outChannels, g.kernelH, g.kernelW, g.strideH, g.strideW,
         g.padH, g.padW, g.padBottom, g.padRight, g.dilationH, g.dilationW, g.groups, transposed ? 1 : 0]
    }

    /// Calls `body` with pointers to the stride, dilation and padding arrays oneDNN wants.
    private static func withSpatial<R>(_ g: ConvGeometry, _ body: (UnsafePointer<Int64>, UnsafePointer<Int64>,
                                                                   UnsafePointer<Int64>, UnsafePointer<Int64>) -> R) -> R {
        var s = DNNL.dims([g.strideH, g.strideW]), d = DNNL.dims([g.dilationH - 1, g.dilationW - 1])
        var l = DNNL.dims([g.padH, g.padW]), r = DNNL.dims([g.padBottom, g.padRight])
        func p(_ x: UnsafePointer<dnnl_dims_t>) -> UnsafePointer<Int64> {
            UnsafeRawPointer(x).assumingMemoryBound(to: Int64.self)
        }
        return body(p(&s), p(&d), p(&l), p(&r))
    }

    static func forwardPrimitive(_ g: ConvGeometry, transposed: Bool, bias: Bool, activation: FusedActivation) -> DNNLPrimitive {
        var key = PrimitiveKey(op: "conv_fwd", ints: geometryInts(g, transposed) + [bias ? 1 : 0])
        key.ints += activation.key
        return DNNL.primitive(key) {
            let sh = shapes(g, transposed: transposed)
            var src = dataDesc(sh.src, g), dst = dataDesc(sh.dst, g), w = DNNL.anyDesc(sh.weights)
            let b = DNNL.plainDesc(sh.bias)
            var desc = dnnl_convolution_desc_t()
            withSpatial(g) { s, d, l, r in
                withOptionalPointer(bias ? b : nil) { bp in
                    let st = transposed
                        ? dnnl_dilated_deconvolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_deconvolution_direct,
                                                                       &src, &w, bp, &dst, s, d, l, r)
                        : dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct,
                                                                     &src, &w, bp, &dst, s, d, l, r)
                    DNNL.check(st, "describing \(g)")
                }
            }
            let attr = activation.postOp.flatMap { DNNL.postOpAttr($0.0, alpha: $0.1) }
            defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
            return DNNLPrimitive(opDesc: &desc, attr: attr, what: "\(transposed ? "deconvolution" : "convolution") \(g)")
        }
    }

    /// Forward pass. Returns the output (blocked when oneDNN chose so) and the input as the
    /// primitive consumed it, which the weight gradient needs again.
    /// With a bf16-rounding `precision` the input and the weight are rounded to bfloat16 before
    /// the kernel and the output after it (the saved input is the rounded one).
    static func forward(_ g: ConvGeometry, transposed: Bool, x: Tensor, weight: Tensor, bias: Tensor?,
                        activation: FusedActivation, outShape: [Int], precision: ComputePrecision = .fp32)
        -> (Tensor, Storage, dnnl_memory_desc_t) {
        let sh = shapes(g, transposed: transposed)
        let p = forwardPrimitive(g, transposed: transposed, bias: bias != nil, activation: activation)
        let srcMD = p.md(dnnl_query_src_md), wMD = p.md(dnnl_query_weights_md), dstMD = p.md(dnnl_query_dst_md)
        var src = DNNL.buffer(x, as: srcMD)
        var w = weightBuffer(weight, plain: sh.plainWeights, as: wMD)
        if precision.roundsToBF16 {
            src = BF16.rounded(src, owned: src !== x.storage)
            w = BF16.rounded(w, owned: w !== weight.storage && w !== weight.plain)
        }
        let out = Storage(count: DNNL.floatCount(dstMD))
        var args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)] = [
            (Arg.src, UnsafeMutableRawPointer(src.pointer), srcMD),
            (Arg.weights, UnsafeMutableRawPointer(w.pointer), wMD),
            (Arg.dst, UnsafeMutableRawPointer(out.pointer), dstMD),
        ]
        if let bias { args.append((Arg.bias, UnsafeMutableRawPointer(bias.plain.pointer), DNNL.plainDesc(sh.bias))) }
        p.execute(args)
        if precision.roundsToBF16 { BF16.roundInPlace(out.pointer, count: out.count) }
        return (DNNL.tensor(outShape, out, dstMD), src, srcMD)
    }

    /// Gradient with respect to the input.
    static func backwardData(_ g: ConvGeometry, transposed: Bool, gradOutput gy: Tensor, weight: Tensor,
                             inShape: [Int], precision: ComputePrecision = .fp32) -> Tensor {
        let sh = shapes(g, transposed: transposed)
        let fwd = forwardPrimitive(g, transposed: transposed, bias: false, activation: .none)
        let key = PrimitiveKey(op: "conv_bwd_data", ints: geometryInts(g, transposed))
        let p = DNNL.primitive(key) {
            var dsrc = dataDesc(sh.src, g), ddst = dataDesc(sh.dst, g), w = DNNL.anyDesc(sh.weights)
            var desc = dnnl_convolution_desc_t()
            withSpatial(g) { s, d, l, r in
                let st = transposed
                    ? dnnl_dilated_deconvolution_backward_data_desc_init(&desc, dnnl_deconvolution_direct, &dsrc, &w, &ddst, s, d, l, r)
                    : dnnl_dilated_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &dsrc, &w, &ddst, s, d, l, r)
                DNNL.check(st, "describing backward-data \(g)")
            }
            return DNNLPrimitive(opDesc: &desc, hint: fwd, what: "backward-data \(g)")
        }
        let dsrcMD = p.md(dnnl_query_diff_src_md), wMD = p.md(dnnl_query_weights_md), ddstMD = p.md(dnnl_query_diff_dst_md)
        var dy = DNNL.buffer(gy, as: ddstMD)
        var w = weightBuffer(weight, plain: sh.plainWeights, as: wMD)
        if precision.roundsToBF16 {
            dy = BF16.rounded(dy, owned: dy !== gy.storage)
            w = BF16.rounded(w, owned: w !== weight.storage && w !== weight.plain)
        }
        let out = Storage(count: DNNL.floatCount(dsrcMD))
        p.execute([(Arg.diffDst, UnsafeMutableRawPointer(dy.pointer), ddstMD),
                   (Arg.weights, UnsafeMutableRawPointer(w.pointer), wMD),
                   (Arg.diffSrc, UnsafeMutableRawPointer(out.pointer), dsrcMD)])
        if precision.roundsToBF16 { BF16.roundInPlace(out.pointer, count: out.count) }
        return DNNL.tensor(inShape, out, dsrcMD)
    }

    /// Gradients with respect to the weight (PyTorch layout) and the bias.
    static func backwardWeights(_ g: ConvGeometry, transposed: Bool, src: Storage, srcDesc: dnnl_memory_desc_t,
                                gradOutput gy: Tensor, weightShape: [Int], withBias: Bool,
                                precision: ComputePrecision = .fp32) -> (Tensor, Tensor?) {
        let sh = shapes(g, transposed: transposed)
        let fwd = forwardPrimitive(g, transposed: transposed, bias: withBias, activation: .none)
        let key = PrimitiveKey(op: "conv_bwd_weights", ints: geometryInts(g, transposed) + [withBias ? 1 : 0])
        let p = DNNL.primitive(key) {
            var s0 = dataDesc(sh.src, g), ddst = dataDesc(sh.dst, g), dw = DNNL.anyDesc(sh.weights)
            let db = DNNL.plainDesc(sh.bias)
            var desc = dnnl_convolution_desc_t()
            withSpatial(g) { s, d, l, r in
                withOptionalPointer(withBias ? db : nil) { bp in
                    let st = transposed
                        ? dnnl_dilated_deconvolution_backward_weights_desc_init(&desc, dnnl_deconvolution_direct, &s0, &dw,
                                                                                bp, &ddst, s, d, l, r)
                        : dnnl_dilated_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &s0, &dw,
                                                                              bp, &ddst, s, d, l, r)
                    DNNL.check(st, "describing backward-weights \(g)")
                }
            }
            return DNNLPrimitive(opDesc: &desc, hint: fwd, what: "backward-weights \(g)")
        }
        let srcMD = p.md(dnnl_query_src_md), dwMD = p.md(dnnl_query_diff_weights_md), ddstMD = p.md(dnnl_query_diff_dst_md)
        let srcBuf: Storage
        if DNNL.sameDesc(srcMD, srcDesc) { srcBuf = src } else {
            srcBuf = Storage(count: DNNL.floatCount(srcMD))
            DNNL.reorder(src.pointer, srcDesc, srcBuf.pointer, srcMD)
        }
        var dy = DNNL.buffer(gy, as: ddstMD)
        if precision.roundsToBF16 { dy = BF16.rounded(dy, owned: dy !== gy.storage) }
        let dwPlain = Tensor.empty(weightShape)
        let dwBuf = DNNL.sameDesc(dwMD, sh.plainWeights) ? dwPlain.storage : Storage(count: DNNL.floatCount(dwMD))
        var args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)] = [
            (Arg.src, UnsafeMutableRawPointer(srcBuf.pointer), srcMD),
            (Arg.diffDst, UnsafeMutableRawPointer(dy.pointer), ddstMD),
            (Arg.diffWeights, UnsafeMutableRawPointer(dwBuf.pointer), dwMD),
        ]
        var db: Tensor? = nil
        if withBias {
            let b = Tensor.empty(sh.bias)
            args.append((Arg.diffBias, UnsafeMutableRawPointer(b.storage.pointer), DNNL.plainDesc(sh.bias)))
            db = b
        }
        p.execute(args)
        if dwBuf !== dwPlain.storage { DNNL.reorder(dwBuf.pointer, dwMD, dwPlain.storage.pointer, sh.plainWeights) }
        return (dwPlain, db)
    }

    /// The weight (stored in PyTorch's layout) as the primitive wants it.
    private static func weightBuffer(_ weight: Tensor, plain: dnnl_memory_desc_t, as md: dnnl_memory_desc_t) -> Storage {
        if DNNL.sameDesc(plain, md) { return weight.plain }
        let out = Storage(count: DNNL.floatCount(md))
        DNNL.reorder(weight.plain.pointer, plain, out.pointer, md)
        return out
    }
}
