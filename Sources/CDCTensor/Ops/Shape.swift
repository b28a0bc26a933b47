/// Reshaping, permuting, concatenating and slicing.
extension Tensor {
    /// Same values in a new shape (one dimension may be -1).
    public func reshape(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot infer -1 in \(newShape) for \(shape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "reshape: \(shape) (\(count) elements) cannot become \(newShape)")
        let out = Tensor(shape: s, storage: plain)
        return out.recording(.reshape, [self]) { [shape] g in [g.reshape(shape)] }
    }

    /// Flattens dimensions `start...end` into one (`flatten()` keeps the batch dimension).
    public func flatten(from start: Int = 1, to end: Int = -1) -> Tensor {
        let e = end < 0 ? rank + end : end
        precondition(start >= 0 && start <= e && e < rank, "flatten: bad range \(start)...\(end) for rank \(rank)")
        let merged = shape[start...e].reduce(1, *)
        return reshape(Array(shape[..<start]) + [merged] + Array(shape[(e + 1)...]))
    }

    /// Reorders dimensions: `permute([0, 2, 3, 1])` turns NCHW into NHWC.
    public func permute(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permute: \(order) is not a permutation of 0..<\(rank)")
        let newShape = order.map { shape[$0] }
        let out = Tensor.empty(newShape)
        let srcStrides = Broadcast.strides(shape)
        let permStrides = order.map { srcStrides[$0] }
        let zero = [Int](repeating: 0, count: rank)
        let ps = plain.pointer, po = out.storage.pointer
        Broadcast.forEachRun(newShape, permStrides, zero) { o, os, _, n, st, _ in
            for j in 0..<n { po[o + j] = ps[os + j * st] }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in order.enumerated() { inverse[p] = i }
        return out.recording(.permute, [self]) { g in [g.permute(inverse)] }
    }

    /// Swaps two dimensions.
    public func transposed(_ a: Int = 0, _ b: Int = 1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(a, b)
        return permute(order)
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat of no tensors")
        let first = tensors[0].shape
        for t in tensors {
            precondition(t.rank == first.count && (0..<first.count).allSatisfy { $0 == axis || t.shape[$0] == first[$0] },
                         "concat: shape \(t.shape) does not fit \(first) along axis \(axis)")
        }
        var shape = first
        shape[axis] = tensors.map { $0.shape[axis] }.reduce(0, +)
        let outer = first[..<axis].reduce(1, *)
        let inner = first[(axis + 1)...].reduce(1, *)
        let out = Tensor.empty(shape)
        let po = out.storage.pointer
        let rowOut = shape[axis] * inner
        var offset = 0
        for t in tensors {
            let row = t.shape[axis] * inner
            let pt = t.plain.pointer
            for o in 0..<outer { (po + o * rowOut + offset).update(from: pt + o * row, count: row) }
            offset += row
        }
        let sizes = tensors.map { $0.shape[axis] }
        return out.recording(.concat, tensors) { g in
            var start = 0
            return sizes.map { n in defer { start += n }; return g.slice(axis: axis, start..<(start + n)) }
        }
    }

    /// The elements with index in `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        precondition(axis >= 0 && axis < rank && range.lowerBound >= 0 && range.upperBound <= shape[axis],
                     "slice: \(range) out of bounds for axis \(axis) of \(shape)")
        var newShape = shape
        newShape[axis] = range.count
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        let out = Tensor.empty(newShape)
        let ps = plain.pointer, po = out.storage.pointer
        let rowIn = shape[axis] * inner, rowOut = range.count * inner
        for o in 0..<outer {
            (po + o * rowOut).update(from: ps + o * rowIn + range.lowerBound * inner, count: rowOut)
        }
        let full = shape
        return out.recording(.slice, [self]) { g in
            let gi = Tensor.zeros(full)
            let pg = g.plain.pointer, pi = gi.storage.pointer
            for o in 0..<outer {
                (pi + o * rowIn + range.lowerBound * inner).update(from: pg + o * rowOut, count: rowOut)
            }
            return [gi]
        }
    }
}
