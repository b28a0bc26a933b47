import CDNNL
import Foundation

/// oneDNN argument indices (DNNL_ARG_* of dnnl_types.h).
enum Arg {
    static let src: Int32 = 1, dst: Int32 = 17, weights: Int32 = 33, bias: Int32 = 41
    static let mean: Int32 = 49, variance: Int32 = 50, scale: Int32 = 51, shift: Int32 = 52
    static let workspace: Int32 = 64, scratchpad: Int32 = 80
    static let diffSrc: Int32 = 129, diffDst: Int32 = 145, diffWeights: Int32 = 161, diffBias: Int32 = 169
    static let diffScale: Int32 = 255, diffShift: Int32 = 256
}

/// A created oneDNN primitive with its descriptor, cached per shape.
final class DNNLPrimitive: @unchecked Sendable {
    let primitive: OpaquePointer
    let pd: OpaquePointer

    /// Bytes of scratch memory the primitive needs per execution (user-managed scratchpad).
    let scratchpadDesc: dnnl_memory_desc_t
    let scratchpadFloats: Int

    /// Wraps a primitive descriptor: creates the primitive and notes its scratchpad size.
    private init(pd: OpaquePointer, what: String) {
        var prim: OpaquePointer?
        DNNL.check(dnnl_primitive_create(&prim, pd), "creating primitive \(what)")
        self.pd = pd
        self.primitive = prim!
        scratchpadDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        scratchpadFloats = DNNL.floatCount(scratchpadDesc)
    }

    /// The primitive of an op descriptor (`dnnl_*_desc_t`), with optional attributes
    /// (post-ops) and, for backward primitives, the forward one as hint.
    convenience init(opDesc: UnsafeRawPointer, attr: OpaquePointer? = nil, hint: DNNLPrimitive? = nil, what: String) {
        var pd: OpaquePointer?
        let a = DNNL.userScratchpadAttr(attr)
        defer { if attr == nil { dnnl_primitive_attr_destroy(a) } }
        DNNL.check(dnnl_primitive_desc_create(&pd, opDesc, a, DNNL.engine, hint?.pd), "creating \(what)")
        self.init(pd: pd!, what: what)
    }

    /// A reorder between two layouts.
    convenience init(reorderFrom src: dnnl_memory_desc_t, to dst: dnnl_memory_desc_t) {
        var s = src, d = dst
        var pd: OpaquePointer?
        let a = DNNL.userScratchpadAttr(nil)
        defer { dnnl_primitive_attr_destroy(a) }
        DNNL.check(dnnl_reorder_primitive_desc_create(&pd, &s, DNNL.engine, &d, DNNL.engine, a), "creating reorder")
        self.init(pd: pd!, what: "reorder")
    }

    /// The memory descriptor the primitive chose for `query` (e.g. `dnnl_query_src_md`).
    func md(_ query: dnnl_query_t, _ index: Int32 = 0) -> dnnl_memory_desc_t {
        dnnl_primitive_desc_query_md(pd, query, index).pointee
    }

    /// Runs the primitive on raw buffers described by `(argument, pointer, descriptor)`.
    func execute(_ args: [(Int32, UnsafeMutableRawPointer, dnnl_memory_desc_t)]) {
        // Each execution gets its own scratch memory (from the buffer pool), so a primitive
        // may run on any thread: oneDNN's library-managed scratchpad is per creating thread.
        var args = args
        var scratch: Storage? = nil
        if scratchpadFloats > 0 {
            let s = Storage(count: scratchpadFloats)
            args.append((Arg.scratchpad, UnsafeMutableRawPointer(s.pointer), scratchpadDesc))
            scratch = s
        }
        defer { withExtendedLifetime(scratch) {} }
        var mems: [OpaquePointer] = []
        mems.reserveCapacity(args.count)
        var execArgs: [dnnl_exec_arg_t] = []
        for (arg, ptr, desc) in args {
            var d = desc
            var mem: OpaquePointer?
            DNNL.check(dnnl_memory_create(&mem, &d, DNNL.engine, ptr), "creating memory")
            mems.append(mem!)
            execArgs.append(dnnl_exec_arg_t(arg: arg, memory: mem))
        }
        // One primitive at a time: Debian's oneDNN shares one scratchpad between primitives
        // (no concurrent execution) and parallelises each call over all cores itself.
        DNNL.executionLock.lock()
        let status = dnnl_primitive_execute(primitive, DNNL.stream, Int32(execArgs.count), &execArgs)
        let waited = dnnl_stream_wait(DNNL.stream)
        DNNL.executionLock.unlock()
        DNNL.check(status, "executing primitive")
        DNNL.check(waited, "waiting for stream")
        for m in mems { dnnl_memory_destroy(m) }
    }
}

/// Key of the primitive cache: the op and every number its descriptor depends on.
struct PrimitiveKey: Hashable {
    var op: String
    var ints: [Int]
    var descs: [[UInt8]] = []
}

/// The oneDNN engine, stream, primitive cache and layout helpers.
enum DNNL {
    private final class Context: @unchecked Sendable {
        let engine: OpaquePointer
        let stream: OpaquePointer
        let lock = NSLock()
        var cache: [PrimitiveKey: DNNLPrimitive] = [:]
        init() {
            _ = Engine.threads // sets the OpenMP thread count once
            var e: OpaquePointer?
            DNNL.check(dnnl_engine_create(&e, dnnl_cpu, 0), "creating CPU engine")
            var s: OpaquePointer?
            DNNL.check(dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue), "creating stream")
            engine = e!; stream = s!
        }
    }
    private static let context = Context()
    /// Serialises primitive execution (see ``DNNLPrimitive/execute(_:)``).
    static let executionLock = NSLock()
    static var engine: OpaquePointer { context.engine }
    static var stream: OpaquePointer { context.stream }

    /// `attr` (or new attributes) with a user-managed scratchpad.
    static func userScratchpadAttr(_ attr: OpaquePointer?) -> OpaquePointer? {
        var a = attr
        if a == nil { check(dnnl_primitive_attr_create(&a), "creating attributes") }
        check(dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user), "setting scratchpad mode")
        return a
    }

    /// Attributes with one eltwise post-op (`alg`, `alpha`); the caller destroys them.
    static func postOpAttr(_ alg: dnnl_alg_kind_t, alpha: Float) -> OpaquePointer? {
        var attr: OpaquePointer?
        check(dnnl_primitive_attr_create(&attr), "creating attributes")
        var ops: OpaquePointer?
        check(dnnl_post_ops_create(&ops), "creating post-ops")
        check(dnnl_post_ops_append_eltwise(ops, 1, alg, alpha, 0), "appending eltwise post-op")
        check(dnnl_primitive_attr_set_post_ops(attr, ops), "setting post-ops")
        dnnl_post_ops_destroy(ops)
        return attr
    }

    /// Stops with a message naming the failed call (oneDNN errors here are programming errors:
    /// shapes are validated before any primitive is created).
    static func check(_ status: dnnl_status_t, _ what: String) {
        if status != dnnl_success { fatalError("oneDNN error \(status.rawValue) while \(what)") }
    }

    /// The cached primitive for `key`, created by `make` on first use.
    static func primitive(_ key: PrimitiveKey, _ make: () -> DNNLPrimitive) -> DNNLPrimitive {
        context.lock.lock()
        if let p = context.cache[key] { context.lock.unlock(); return p }
        context.lock.unlock()
        let p = make()
        context.lock.lock(); context.cache[key] = p; context.lock.unlock()
        return p
    }

    /// Number of cached primitives (for diagnostics and tests).
    static var cachedPrimitiveCount: Int {
        context.lock.lock(); defer { context.lock.unlock() }
        return context.cache.count
    }

    // MARK: Descriptors

    static func dims(_ values: [Int]) -> dnnl_dims_t {
        var d = dnnl_dims_t(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &d) { raw in
            let p = raw.bindMemory(to: Int64.self)
            for (i, v) in values.enumerated() { p[i] = Int64(v) }
        }
        return d
    }

    /// Row-major descriptor of `shape`.
    static func plainDesc(_ shape: [Int]) -> dnnl_memory_desc_t {
        stridedDesc(shape, Broadcast.strides(shape))
    }

    /// Descriptor of `shape` with explicit element strides.
    static func stridedDesc(_ shape: [Int], _ strides: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var d = dims(shape), s = dims(strides)
        check(withUnsafePointer(to: &d) { dp in
            withUnsafePointer(to: &s) { sp in
                dnnl_memory_desc_init_by_strides(&md, Int32(shape.count),
                                                 UnsafeRawPointer(dp).assumingMemoryBound(to: Int64.self),
                                                 dnnl_f32, UnsafeRawPointer(sp).assumingMemoryBound(to: Int64.self))
            }
        }, "describing shape \(shape)")
        return md
    }

    /// "Let the primitive choose" descriptor of `shape`.
    static func anyDesc(_ shape: [Int]) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var d = dims(shape)
        check(withUnsafePointer(to: &d) { dp in
            dnnl_memory_desc_init_by_tag(&md, Int32(shape.count),
                                         UnsafeRawPointer(dp).assumingMemoryBound(to: Int64.self), dnnl_f32, dnnl_format_tag_any)
        }, "describing shape \(shape)")
        return md
    }

    /// The dimensions a descriptor describes.
    static func descDims(_ desc: dnnl_memory_desc_t) -> [Int] {
        var d = desc.dims
        return withUnsafeBytes(of: &d) { raw in
            let p = raw.bindMemory(to: Int64.self)
            return (0..<Int(desc.ndims)).map { Int(p[$0]) }
        }
    }

    static func sameDesc(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) -> Bool {
        var x = a, y = b
        return dnnl_memory_desc_equal(&x, &y) != 0
    }

    /// Whether `desc` is the row-major layout of its own dimensions.
    static func isPlain(_ desc: dnnl_memory_desc_t) -> Bool { sameDesc(desc, plainDesc(descDims(desc))) }

    /// Bytes a descriptor needs, as a count of floats.
    static func floatCount(_ desc: dnnl_memory_desc_t) -> Int {
        var d = desc
        return (dnnl_memory_desc_get_size(&d) + 3) / 4
    }

    /// Raw bytes of a descriptor, for cache keys.
    static func keyBytes(_ desc: dnnl_memory_desc_t) -> [UInt8] {
        withUnsafeBytes(of: desc) { Array($0) }
    }

    // MARK: Layout changes

    /// Copies `src` (described by `srcDesc`) into `dst` (described by `dstDesc`).
    static func reorder(_ src: UnsafeMutablePointer<Float>, _ srcDesc: dnnl_memory_desc_t,
                        _ dst: UnsafeMutablePointer<Float>, _ dstDesc: dnnl_memory_desc_t) {
        let key = PrimitiveKey(op: "reorder", ints: [], descs: [keyBytes(srcDesc), keyBytes(dstDesc)])
        let p = primitive(key) { DNNLPrimitive(reorderFrom: srcDesc, to: dstDesc) }
        p.execute([(Arg.src, UnsafeMutableRawPointer(src), srcDesc), (Arg.dst, UnsafeMutableRawPointer(dst), dstDesc)])
    }

    /// Fills `plain` with the row-major values of a blocked buffer.
    static func reorderToPlain(from storage: Storage, desc: dnnl_memory_desc_t, shape: [Int], into plain: Storage) {
        reorder(storage.pointer, desc, plain.pointer, plainDesc(descDims(desc)))
    }

    /// The tensor's values laid out as `desc` (no copy when they already are).
    /// `desc` may have more dimensions than the tensor (a 1-D signal seen as height 1).
    static func buffer(_ t: Tensor, as desc: dnnl_memory_desc_t) -> Storage {
        if let own = t.blockedDesc {
            if sameDesc(own, desc) { return t.storage }
            let out = Storage(count: floatCount(desc))
            reorder(t.storage.pointer, own, out.pointer, desc)
            return out
        }
        let plain = plainDesc(descDims(desc))
        if sameDesc(plain, desc) { return t.storage }
        let out = Storage(count: floatCount(desc))
        reorder(t.storage.pointer, plain, out.pointer, desc)
        return out
    }

    /// A tensor of logical `shape` over `storage` laid out as `desc` (plain when it is row-major).
    static func tensor(_ shape: [Int], _ storage: Storage, _ desc: dnnl_memory_desc_t) -> Tensor {
        if isPlain(desc) { return Tensor(shape: shape, storage: storage) }
        return Tensor(shape: shape, blockedStorage: storage, desc: desc)
    }

    /// Descriptor of `dims` in a named layout (`dnnl_nchw`, `dnnl_nhwc`, `dnnl_aBcd16b`, …).
    static func tagDesc(_ dims: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var d = DNNL.dims(dims)
        check(withUnsafePointer(to: &d) { dp in
            dnnl_memory_desc_init_by_tag(&md, Int32(dims.count), UnsafeRawPointer(dp).assumingMemoryBound(to: Int64.self), dnnl_f32, tag)
        }, "describing shape \(dims)")
        return md
    }

    /// Whether batch norm and pooling have optimised (jit) kernels for `desc`: row-major,
    /// channels-last, or channel blocks of 8 or 16. Other blockings (e.g. the 4-channel blocks
    /// oneDNN picks for narrow grouped convolutions) fall to its slow reference kernels.
    static func hasFastNormKernels(_ desc: dnnl_memory_desc_t) -> Bool {
        let dims = descDims(desc)
        guard dims.count == 4 else { return isPlain(desc) }
        return [dnnl_nchw, dnnl_nhwc, dnnl_aBcd16b, dnnl_aBcd8b].contains { sameDesc(desc, tagDesc(dims, $0)) }
    }

    /// The tensor's buffer as it is, with a descriptor of `dims` for it (its own blocked one,
    /// or row-major; a blocked tensor of other dimensions is reordered to row-major).
    static func source(_ t: Tensor, dims: [Int]) -> (Storage, dnnl_memory_desc_t) {
        if let d = t.blockedDesc, descDims(d) == dims {
            if hasFastNormKernels(d) { return (t.storage, d) }
            // Re-block to 16 channels (or row-major) so that the fast kernels apply.
            let target = dims.count == 4 && dims[1] % 16 == 0 ? tagDesc(dims, dnnl_aBcd16b) : plainDesc(dims)
            return (buffer(t, as: target), target)
        }
        return (t.plain, plainDesc(dims))
    }
}

/// Calls `body` with a pointer to `value`, or nil when there is none.
func withOptionalPointer<T, R>(_ value: T?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard var v = value else { return body(nil) }
    return withUnsafePointer(to: &v) { body($0) }
}
