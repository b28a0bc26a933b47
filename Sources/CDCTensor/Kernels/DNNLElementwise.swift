import CDNNL

/// Elementwise functions and binary arithmetic on oneDNN primitives (threaded, vectorised,
/// in any layout). Used for large tensors; small ones stay in Swift loops.
enum DNNLElementwise {
    /// Tensors at least this large go through oneDNN.
    static let threshold = 1 << 15

    /// An elementwise algorithm with its parameters (oneDNN's eltwise `alpha`, `beta`).
    struct Function: Hashable {
        var alg: dnnl_alg_kind_t
        var alpha: Float = 0, beta: Float = 0
        static func == (a: Function, b: Function) -> Bool { a.alg == b.alg && a.alpha == b.alpha && a.beta == b.beta }
        func hash(into h: inout Hasher) { h.combine(alg.rawValue); h.combine(alpha); h.combine(beta) }
        var ints: [Int] { [Int(alg.rawValue), Int(alpha.bitPattern), Int(beta.bitPattern)] }
    }

    /// The tensor's buffer and a descriptor for it (its blocked one, or row-major 1-D).
    static func view(_ t: Tensor) -> (Storage, dnnl_memory_desc_t) {
        if let d = t.blockedDesc { return (t.storage, d) }
        return (t.storage, DNNL.plainDesc([t.count]))
    }

    /// y = f(x), same layout as x.
    static func forward(_ f: Function, _ x: Tensor) -> Tensor {
        let (src, md) = view(x)
        let key = PrimitiveKey(op: "eltwise_fwd", ints: f.ints, descs: [DNNL.keyBytes(md)])
        let p = DNNL.primitive(key) {
            var d = md
            var desc = dnnl_eltwise_desc_t()
            DNNL.check(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training, f.alg, &d, f.alpha, f.beta), "describing eltwise")
            return DNNLPrimitive(opDesc: &desc, what: "eltwise")
        }
        let out = Storage(count: src.count)
        p.execute([(Arg.src, UnsafeMutableRawPointer(src.pointer), md), (Arg.dst, UnsafeMutableRawPointer(out.pointer), md)])
        return x.blockedDesc == nil ? Tensor(shape: x.shape, storage: out) : Tensor(shape: x.shape, blockedStorage: out, desc: md)
    }

    /// dx from dy and the saved data (the input, or the output for `*_use_dst_for_bwd`),
    /// in the data's layout.
    static func backward(_ f: Function, data: Tensor, gradOutput gy: Tensor) -> Tensor {
        let (src, md) = view(data)
        let key = PrimitiveKey(op: "eltwise_bwd", ints: f.ints, descs: [DNNL.keyBytes(md)])
        let p = DNNL.primitive(key) {
            var d = md, dd = md
            var fdesc = dnnl_eltwise_desc_t()
            let fwdAlg: dnnl_alg_kind_t = f.alg
            DNNL.check(dnnl_eltwise_forward_desc_init(&fdesc, dnnl_forward_training, fwdAlg, &d, f.alpha, f.beta), "describing eltwise")
            let hint = DNNLPrimitive(opDesc: &fdesc, what: "eltwise hint")
            var desc = dnnl_eltwise_desc_t()
            DNNL.check(dnnl_eltwise_backward_desc_init(&desc, f.alg, &dd, &d, f.alpha, f.beta), "describing eltwise backward")
            return DNNLPrimitive(opDesc: &desc, hint: hint, what: "eltwise backward")
        }
        let dy = sameLayout(gy, as: data)
        let out = Storage(count: src.count)
        let useDst = [dnnl_eltwise_relu_use_dst_for_bwd, dnnl_eltwise_tanh_use_dst_for_bwd,
                      dnnl_eltwise_logistic_use_dst_for_bwd, dnnl_eltwise_exp_use_dst_for_bwd].contains(f.alg)
        p.execute([(useDst ? Arg.dst : Arg.src, UnsafeMutableRawPointer(src.pointer), md),
                   (Arg.diffDst, UnsafeMutableRawPointer(dy.pointer), md),
                   (Arg.diffSrc, UnsafeMutableRawPointer(out.pointer), md)])
        return data.blockedDesc == nil ? Tensor(shape: data.shape, storage: out) : Tensor(shape: data.shape, blockedStorage: out, desc: md)
    }

    /// `t`'s values laid out as `ref` is (reordered if needed).
    static func sameLayout(_ t: Tensor, as ref: Tensor) -> Storage {
        if let d = ref.blockedDesc {
            if let own = t.blockedDesc, DNNL.sameDesc(own, d) { return t.storage }
            return DNNL.buffer(t, as: d)
        }
        return t.plain
    }

    /// a ∘ b for tensors of the same shape (b is brought into a's layout), optionally followed
    /// by ReLU in the same pass.
    static func binary(_ alg: dnnl_alg_kind_t, _ a: Tensor, _ b: Tensor, relu: Bool = false) -> Tensor {
        let (sa, md) = view(a)
        let sb = sameLayout(b, as: a)
        let key = PrimitiveKey(op: "binary", ints: [Int(alg.rawValue), relu ? 1 : 0], descs: [DNNL.keyBytes(md)])
        let p = DNNL.primitive(key) {
            var d0 = md, d1 = md, d2 = md
            var desc = dnnl_binary_desc_t()
            DNNL.check(dnnl_binary_desc_init(&desc, alg, &d0, &d1, &d2), "describing binary")
            let attr = relu ? DNNL.postOpAttr(dnnl_eltwise_relu, alpha: 0) : nil
            defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
            return DNNLPrimitive(opDesc: &desc, attr: attr, what: "binary")
        }
        let out = Storage(count: sa.count)
        p.execute([(Arg.src, UnsafeMutableRawPointer(sa.pointer), md), (Arg.src + 1, UnsafeMutableRawPointer(sb.pointer), md),
                   (Arg.dst, UnsafeMutableRawPointer(out.pointer), md)])
        return a.blockedDesc == nil ? Tensor(shape: a.shape, storage: out) : Tensor(shape: a.shape, blockedStorage: out, desc: md)
    }
}
