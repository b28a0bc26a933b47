import CDNNL

/// Pooling and batch normalisation on oneDNN primitives, in whatever layout the input has.
enum DNNLPool {
    static func alg(max: Bool, countIncludePad: Bool) -> dnnl_alg_kind_t {
        max ? dnnl_pooling_max : (countIncludePad ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding)
    }

    private static func withSpatial<R>(_ g: PoolGeometry, _ body: (UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>,
                                                                   UnsafePointer<Int64>, UnsafePointer<Int64>) -> R) -> R {
        var s = DNNL.dims([g.strideH, g.strideW]), k = DNNL.dims([g.kernelH, g.kernelW]), d = DNNL.dims([0, 0])
        var l = DNNL.dims([g.padH, g.padW]), r = DNNL.dims([g.padH, g.padW])
        func p(_ x: UnsafePointer<dnnl_dims_t>) -> UnsafePointer<Int64> { UnsafeRawPointer(x).assumingMemoryBound(to: Int64.self) }
        return body(p(&s), p(&k), p(&d), p(&l), p(&r))
    }

    private static func ints(_ g: PoolGeometry, _ max: Bool, _ inc: Bool) -> [Int] {
        [g.batch, g.channels, g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW, max ? 1 : 0, inc ? 1 : 0]
    }

    static func forwardPrimitive(_ g: PoolGeometry, max: Bool, countIncludePad: Bool, srcDesc: dnnl_memory_desc_t) -> DNNLPrimitive {
        let key = PrimitiveKey(op: "pool_fwd", ints: ints(g, max, countIncludePad), descs: [DNNL.keyBytes(srcDesc)])
        return DNNL.primitive(key) {
            var src = srcDesc, dst = DNNL.anyDesc(g.outputShape)
            var desc = dnnl_pooling_v2_desc_t()
            withSpatial(g) { s, k, d, l, r in
                DNNL.check(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_training, alg(max: max, countIncludePad: countIncludePad),
                                                             &src, &dst, s, k, d, l, r), "describing pooling")
            }
            return DNNLPrimitive(opDesc: &desc, what: "pooling")
        }
    }

    /// Forward; returns output, and the workspace (max pooling) the backward needs.
    static func forward(_ g: PoolGeometry, max: Bool, countIncludePad: Bool, x: Tensor, outShape: [Int])
        -> (Tensor, Storage?, dnnl_memory_desc_t) {
        let (srcBuf, srcMD) = DNNL.source(x, dims: g.inputShape)
        let p = forwardPrimitive(g, max: max, countIncludePad: countIncludePad, srcDesc: srcMD)
        let dstMD = p.md(dnnl_query_dst_md)
        let wsMD = p.md(dnnl_query_workspace_md)
        let out = Storage(count: DNNL.floatCount(dstMD))
        var args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)] = [
            (Arg.src, UnsafeMutableRawPointer(srcBuf.pointer), srcMD),
            (Arg.dst, UnsafeMutableRawPointer(out.pointer), dstMD),
        ]
        var ws: Storage? = nil
        if max && DNNL.floatCount(wsMD) > 0 {
            let w = Storage(count: DNNL.floatCount(wsMD))
            args.append((Arg.workspace, UnsafeMutableRawPointer(w.pointer), wsMD))
            ws = w
        }
        p.execute(args)
        return (DNNL.tensor(outShape, out, dstMD), ws, srcMD)
    }

    static func backward(_ g: PoolGeometry, max: Bool, countIncludePad: Bool, srcDesc: dnnl_memory_desc_t,
                         workspace: Storage?, gradOutput gy: Tensor, inShape: [Int]) -> Tensor {
        let fwd = forwardPrimitive(g, max: max, countIncludePad: countIncludePad, srcDesc: srcDesc)
        let dstMD = fwd.md(dnnl_query_dst_md)
        let key = PrimitiveKey(op: "pool_bwd", ints: ints(g, max, countIncludePad), descs: [DNNL.keyBytes(srcDesc)])
        let p = DNNL.primitive(key) {
            var dsrc = srcDesc, ddst = dstMD
            var desc = dnnl_pooling_v2_desc_t()
            withSpatial(g) { s, k, d, l, r in
                DNNL.check(dnnl_pooling_v2_backward_desc_init(&desc, alg(max: max, countIncludePad: countIncludePad),
                                                              &dsrc, &ddst, s, k, d, l, r), "describing pooling backward")
            }
            return DNNLPrimitive(opDesc: &desc, hint: fwd, what: "pooling backward")
        }
        let ddstMD = p.md(dnnl_query_diff_dst_md), dsrcMD = p.md(dnnl_query_diff_src_md)
        let dy = DNNL.buffer(gy, as: ddstMD)
        let out = Storage(count: DNNL.floatCount(dsrcMD))
        var args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)] = [
            (Arg.diffDst, UnsafeMutableRawPointer(dy.pointer), ddstMD),
            (Arg.diffSrc, UnsafeMutableRawPointer(out.pointer), dsrcMD),
        ]
        if let workspace { args.append((Arg.workspace, UnsafeMutableRawPointer(workspace.pointer), fwd.md(dnnl_query_workspace_md))) }
        p.execute(args)
        return DNNL.tensor(inShape, out, dsrcMD)
    }
}

/// Batch normalisation on oneDNN (scale and shift per channel).
enum DNNLBatchNorm {
    private static func flags(training: Bool, fuseReLU: Bool) -> UInt32 {
        var f = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue
        if !training { f |= dnnl_use_global_stats.rawValue }
        if fuseReLU { f |= dnnl_fuse_norm_relu.rawValue }
        return f
    }

    static func forwardPrimitive(dataDesc: dnnl_memory_desc_t, epsilon: Float, training: Bool, fuseReLU: Bool) -> DNNLPrimitive {
        let key = PrimitiveKey(op: "bn_fwd", ints: [Int(epsilon.bitPattern), training ? 1 : 0, fuseReLU ? 1 : 0],
                               descs: [DNNL.keyBytes(dataDesc)])
        return DNNL.primitive(key) {
            var d = dataDesc
            var desc = dnnl_batch_normalization_desc_t()
            DNNL.check(dnnl_batch_normalization_forward_desc_init(&desc, training ? dnnl_forward_training : dnnl_forward_inference,
                                                                  &d, epsilon, flags(training: training, fuseReLU: fuseReLU)),
                       "describing batch norm")
            return DNNLPrimitive(opDesc: &desc, what: "batch norm")
        }
    }

    /// Forward. In training mode `mean`/`variance` receive the batch statistics (biased
    /// variance); otherwise they are read as the running statistics.
    static func forward(x: Tensor, dims: [Int], scale: Tensor, shift: Tensor, mean: Storage, variance: Storage,
                        epsilon: Float, training: Bool, fuseReLU: Bool) -> (Tensor, Storage?, Storage, dnnl_memory_desc_t) {
        let (src, dataMD) = DNNL.source(x, dims: dims)
        let p = forwardPrimitive(dataDesc: dataMD, epsilon: epsilon, training: training, fuseReLU: fuseReLU)
        let dstMD = p.md(dnnl_query_dst_md)
        let c = dims[1]
        let cMD = DNNL.plainDesc([c])
        let out = Storage(count: DNNL.floatCount(dstMD))
        var args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)] = [
            (Arg.src, UnsafeMutableRawPointer(src.pointer), dataMD),
            (Arg.dst, UnsafeMutableRawPointer(out.pointer), dstMD),
            (Arg.scale, UnsafeMutableRawPointer(scale.plain.pointer), cMD),
            (Arg.shift, UnsafeMutableRawPointer(shift.plain.pointer), cMD),
            (Arg.mean, UnsafeMutableRawPointer(mean.pointer), cMD),
            (Arg.variance, UnsafeMutableRawPointer(variance.pointer), cMD),
        ]
        var ws: Storage? = nil
        if fuseReLU && training {
            let wsMD = p.md(dnnl_query_workspace_md)
            let w = Storage(count: DNNL.floatCount(wsMD))
            args.append((Arg.workspace, UnsafeMutableRawPointer(w.pointer), wsMD))
            ws = w
        }
        p.execute(args)
        return (DNNL.tensor(x.shape, out, dstMD), ws, src, dataMD)
    }

    /// Backward of training-mode batch norm: input, scale and shift gradients.
    static func backward(x: Storage, shape: [Int], dataDesc: dnnl_memory_desc_t, gradOutput gy: Tensor, scale: Tensor,
                         shift: Tensor, mean: Storage, variance: Storage, workspace: Storage?, epsilon: Float, fuseReLU: Bool)
        -> (Tensor, Tensor, Tensor) {
        let fwd = forwardPrimitive(dataDesc: dataDesc, epsilon: epsilon, training: true, fuseReLU: fuseReLU)
        let key = PrimitiveKey(op: "bn_bwd", ints: [Int(epsilon.bitPattern), fuseReLU ? 1 : 0], descs: [DNNL.keyBytes(dataDesc)])
        let p = DNNL.primitive(key) {
            var dd = dataDesc, d = dataDesc
            var desc = dnnl_batch_normalization_desc_t()
            DNNL.check(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &dd, &d, epsilon,
                                                                   flags(training: true, fuseReLU: fuseReLU)),
                       "describing batch norm backward")
            return DNNLPrimitive(opDesc: &desc, hint: fwd, what: "batch norm backward")
        }
        let ddstMD = p.md(dnnl_query_diff_dst_md), dsrcMD = p.md(dnnl_query_diff_src_md)
        let c = shape[1]
        let cMD = DNNL.plainDesc([c])
        let dy = DNNL.buffer(gy, as: ddstMD)
        let dx = Storage(count: DNNL.floatCount(dsrcMD))
        let dscale = Tensor.empty([c]), dshift = Tensor.empty([c])
        var args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)] = [
            (Arg.src, UnsafeMutableRawPointer(x.pointer), dataDesc),
            (Arg.diffDst, UnsafeMutableRawPointer(dy.pointer), ddstMD),
            (Arg.scale, UnsafeMutableRawPointer(scale.plain.pointer), cMD),
            (Arg.shift, UnsafeMutableRawPointer(shift.plain.pointer), cMD),
            (Arg.mean, UnsafeMutableRawPointer(mean.pointer), cMD),
            (Arg.variance, UnsafeMutableRawPointer(variance.pointer), cMD),
            (Arg.diffSrc, UnsafeMutableRawPointer(dx.pointer), dsrcMD),
            (Arg.diffScale, UnsafeMutableRawPointer(dscale.storage.pointer), cMD),
            (Arg.diffShift, UnsafeMutableRawPointer(dshift.storage.pointer), cMD),
        ]
        if let workspace { args.append((Arg.workspace, UnsafeMutableRawPointer(workspace.pointer), fwd.md(dnnl_query_workspace_md))) }
        p.execute(args)
        return (DNNL.tensor(shape, dx, dsrcMD), dscale, dshift)
    }
}
