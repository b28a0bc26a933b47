/// Sums and means.
extension Tensor {
    /// Sum of all elements (a scalar).
    public func sum() -> Tensor {
        let p = plain.pointer
        var acc: Double = 0
        for i in 0..<count { acc += Double(p[i]) }
        let out = Tensor(scalar: Float(acc))
        return out.recording(.sum, [self]) { [shape] g in [Tensor.full(shape, g.item)] }
    }

    /// Mean of all elements (a scalar).
    public func mean() -> Tensor { sum() * (1 / Float(count)) }

    /// Sum over `axes` (negative axes count from the end).
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = Set(axes.map { $0 < 0 ? rank + $0 : $0 })
        precondition(ax.allSatisfy { $0 >= 0 && $0 < rank }, "sum: axes \(axes) out of range for rank \(rank)")
        let kept = shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let out = detach().sumToShape(kept)
        let result = keepDims ? out : out.reshape(shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element))
        let r = Tensor(shape: result.shape, storage: result.storage)
        return r.recording(.sumAxes, [self]) { [shape] g in
            [Tensor.binaryKernel(Tensor.zeros(shape), g.reshape(kept), "expand") { _, v in v }]
        }
    }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[$0 < 0 ? rank + $0 : $0] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(n))
    }

    /// Index of the largest element along the last axis, for each row.
    public func argmaxLastAxis() -> [Int] {
        let n = shape.last ?? 1
        let rows = count / Swift.max(n, 1)
        let p = plain.pointer
        return (0..<rows).map { r in
            var best = 0
            for j in 1..<Swift.max(n, 1) where p[r * n + j] > p[r * n + best] { best = j }
            return best
        }
    }
}
