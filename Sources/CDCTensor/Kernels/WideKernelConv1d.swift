import CDNNL

/// 1-D convolution of a single input channel with a wide kernel (M5's first layer: kernel 80,
/// stride 4) as im2col and one GEMM, with a channels-last output.
///
/// oneDNN 2.6 has no jit kernel for a 1-channel convolution with a kernel this wide: it falls
/// back to its gemm convolution, which writes a row-major output, on which batch norm and max
/// pooling then run slow generic kernels, and whose weight gradient runs one small GEMM per
/// image (measured on 2 cores, `[64, 1, 8000]`, 128 channels: batch norm alone 0.7–1.5 s per
/// call). Here the whole batch is one GEMM each way, and the output `[N, C, L]` is stored
/// channels-last (`[N, L, C]` in memory), a layout with jit batch-norm and pooling kernels.
enum WideKernelConv1d {
    /// Narrower kernels stay on oneDNN's convolution (it has jit kernels for them).
    static let minKernel = 32

    /// Whether `g` (a plain, not transposed, convolution) is run here.
    static func applies(_ g: ConvGeometry) -> Bool {
        g.groups == 1 && g.inChannels == 1 && g.height == 1 && g.kernelH == 1 && g.strideH == 1 && g.padH == 0
            && g.padBottom == 0 && g.dilationW == 1 && g.kernelW >= minKernel && g.outWidth >= 1
    }

    /// The output's layout: `[N, C, 1, L]` channels-last.
    static func outputDesc(_ g: ConvGeometry) -> dnnl_memory_desc_t {
        DNNL.tagDesc([g.batch, g.outChannels, 1, g.outWidth], dnnl_nhwc)
    }

    /// Patches of the zero-padded input: row `n·L' + t` holds `x[n, t·s − p ..< t·s − p + k]`.
    static func im2col(_ g: ConvGeometry, x: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>) {
        let (ol, k, s, p, w) = (g.outWidth, g.kernelW, g.strideW, g.padW, g.width)
        Engine.parallelFor(g.batch * ol, grain: 512) { rows in
            for r in rows {
                let n = r / ol, start = (r % ol) * s - p
                let src = x + n * w, dst = cols + r * k
                if start >= 0 && start + k <= w {
                    dst.update(from: src + start, count: k)
                } else {
                    for j in 0..<k {
                        let i = start + j
                        dst[j] = i >= 0 && i < w ? src[i] : 0
                    }
                }
            }
        }
    }

    /// Adds each patch's gradient back onto the input positions it was copied from.
    static func col2im(_ g: ConvGeometry, cols: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>) {
        let (ol, k, s, p, w) = (g.outWidth, g.kernelW, g.strideW, g.padW, g.width)
        Engine.parallelFor(g.batch, grain: 1) { images in
            for n in images {
                let dst = x + n * w
                for i in 0..<w { dst[i] = 0 }
                for t in 0..<ol {
                    let start = t * s - p, src = cols + (n * ol + t) * k
                    let lo = Swift.max(0, -start), hi = Swift.min(k, w - start)   // a patch may lie wholly in the padding
                    if lo < hi { for j in lo..<hi { dst[start + j] += src[j] } }
                }
            }
        }
    }

    /// Forward: returns the output (channels-last) and the patches, which the weight gradient needs.
    static func forward(_ g: ConvGeometry, x: Tensor, weight: Tensor, bias: Tensor?, outShape: [Int]) -> (Tensor, Storage) {
        let rows = g.batch * g.outWidth, k = g.kernelW, o = g.outChannels
        let cols = Storage(count: rows * k)
        im2col(g, x: x.plain.pointer, cols: cols.pointer)
        let out = Storage(count: rows * o)
        // out[rows, O] = cols[rows, k] · weight[O, k]ᵀ
        Gemm.sgemm(transA: false, transB: true, m: rows, n: o, k: k, a: cols.pointer, lda: k,
                   b: weight.plain.pointer, ldb: k, c: out.pointer, ldc: o)
        if let bias {
            let b = bias.plain.pointer, po = out.pointer
            Engine.parallelFor(rows, grain: 1024) { r in
                for i in r { let row = po + i * o; for c in 0..<o { row[c] += b[c] } }
            }
        }
        return (DNNL.tensor(outShape, out, outputDesc(g)), cols)
    }

    /// Gradients of the input (when `needInput`), the weight `[O, 1, k]` and the bias.
    static func backward(_ g: ConvGeometry, gradOutput gy: Tensor, cols: Storage, weight: Tensor, withBias: Bool,
                         needInput: Bool, inShape: [Int]) -> (Tensor?, Tensor, Tensor?) {
        let rows = g.batch * g.outWidth, k = g.kernelW, o = g.outChannels
        let dy = DNNL.buffer(gy, as: outputDesc(g))        // [rows, O]
        let gw = Tensor.empty(weight.shape)
        // gw[O, k] = dyᵀ · cols
        Gemm.sgemm(transA: true, transB: false, m: o, n: k, k: rows, a: dy.pointer, lda: o, b: cols.pointer, ldb: k,
                   c: gw.storage.pointer, ldc: k)
        var gb: Tensor? = nil
        if withBias {
            let ones = Storage(count: rows)
            ones.pointer.update(repeating: 1, count: rows)
            let b = Tensor.empty([o])
            Gemm.sgemm(transA: false, transB: false, m: 1, n: o, k: rows, a: ones.pointer, lda: rows, b: dy.pointer,
                       ldb: o, c: b.storage.pointer, ldc: o)
            gb = b
        }
        var gx: Tensor? = nil
        if needInput {
            let gcols = Storage(count: rows * k)
            // gcols[rows, k] = dy · weight
            Gemm.sgemm(transA: false, transB: false, m: rows, n: k, k: o, a: dy.pointer, lda: o,
                       b: weight.plain.pointer, ldb: k, c: gcols.pointer, ldc: k)
            let t = Tensor.empty(inShape)
            col2im(g, cols: gcols.pointer, x: t.storage.pointer)
            gx = t
        }
        return (gx, gw, gb)
    }
}
