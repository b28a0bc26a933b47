/// Matrix products and the fully connected layer's op.
extension Tensor {
    /// [M, K] × [K, N] → [M, N].
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(rank == 2 && other.rank == 2 && shape[1] == other.shape[0],
                     "matmul: shapes \(shape) and \(other.shape) do not fit")
        let (m, k, n) = (shape[0], shape[1], other.shape[1])
        let out = Tensor.empty([m, n])
        Gemm.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: plain.pointer, lda: k,
                   b: other.plain.pointer, ldb: n, c: out.storage.pointer, ldc: n)
        return out.recording(.matmul, [self, other]) { g in
            let gp = g.plain.pointer
            var ga: Tensor? = nil, gb: Tensor? = nil
            if self.requiresGrad {
                let t = Tensor.empty([m, k])
                Gemm.sgemm(transA: false, transB: true, m: m, n: k, k: n, a: gp, lda: n,
                           b: other.plain.pointer, ldb: n, c: t.storage.pointer, ldc: k)
                ga = t
            }
            if other.requiresGrad {
                let t = Tensor.empty([k, n])
                Gemm.sgemm(transA: true, transB: false, m: k, n: n, k: m, a: self.plain.pointer, lda: k,
                           b: gp, ldb: n, c: t.storage.pointer, ldc: n)
                gb = t
            }
            return [ga, gb]
        }
    }

    /// Fully connected: `x [N, in] · weightᵀ [in, out] + bias [out]` (PyTorch's weight layout).
    /// With a bf16-rounding ``Engine/precision`` the input, the weight, the output and the input
    /// gradient are rounded to bfloat16 (the weight gradient stays float32).
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "linear: input \(x.shape) does not fit weight \(weight.shape)")
        let (n, inF, outF) = (x.shape[0], x.shape[1], weight.shape[0])
        let bf16 = Engine.precision.roundsToBF16
        func operand(_ t: Tensor) -> Storage { bf16 ? BF16.rounded(t.plain, owned: false) : t.plain }
        let xs = operand(x), ws = operand(weight)
        let out = Tensor.empty([n, outF])
        let po = out.storage.pointer
        if let bias {
            let pb = bias.plain.pointer
            for i in 0..<n { (po + i * outF).update(from: pb, count: outF) }
        }
        Gemm.sgemm(transA: false, transB: true, m: n, n: outF, k: inF, a: xs.pointer, lda: inF,
                   b: ws.pointer, ldb: inF, beta: bias == nil ? 0 : 1, c: po, ldc: outF)
        if bf16 { BF16.roundInPlace(po, count: n * outF) }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return out.recording(.linear, inputs) { g in
            let gs = operand(g)
            let gp = gs.pointer
            var gx: Tensor? = nil
            if x.requiresGrad {
                let t = Tensor.empty([n, inF])
                Gemm.sgemm(transA: false, transB: false, m: n, n: inF, k: outF, a: gp, lda: outF,
                           b: ws.pointer, ldb: inF, c: t.storage.pointer, ldc: inF)
                if bf16 { BF16.roundInPlace(t.storage.pointer, count: n * inF) }
                gx = t
            }
            let gw = Tensor.empty([outF, inF])
            Gemm.sgemm(transA: true, transB: false, m: outF, n: inF, k: n, a: gp, lda: outF,
                       b: xs.pointer, ldb: inF, c: gw.storage.pointer, ldc: inF)
            var result: [Tensor?] = [gx, gw]
            if bias != nil {
                let gb = Tensor.zeros([outF])
                let pb = gb.storage.pointer
                for i in 0..<n { for j in 0..<outF { pb[j] += gp[i * outF + j] } }
                result.append(gb)
            }
            return result
        }
    }
}
