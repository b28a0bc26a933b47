/// Shape arithmetic for NumPy-style broadcasting.
public enum Broadcast {
    /// The broadcast shape of `a` and `b`, or nil when they are incompatible.
    public static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Row-major strides of `shape`.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// Strides of `shape` viewed as broadcast to `target` (0 on broadcast dimensions).
    static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let own = strides(shape)
        let off = target.count - shape.count
        return (0..<target.count).map { i in
            i < off ? 0 : (shape[i - off] == 1 && target[i] != 1 ? 0 : own[i - off])
        }
    }

    /// Calls `body(outIndex, aOffset, bOffset, innerCount, aInnerStride, bInnerStride)` for
    /// each run of the innermost dimension of `outShape`.
    static func forEachRun(_ outShape: [Int], _ sa: [Int], _ sb: [Int],
                           _ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        let rank = outShape.count
        if rank == 0 { body(0, 0, 0, 1, 0, 0); return }
        let inner = outShape[rank - 1]
        let outer = outShape.dropLast().reduce(1, *)
        var idx = [Int](repeating: 0, count: rank)
        var oa = 0, ob = 0
        for o in 0..<outer {
            body(o * inner, oa, ob, inner, sa[rank - 1], sb[rank - 1])
            var d = rank - 2
            while d >= 0 {
                idx[d] += 1; oa += sa[d]; ob += sb[d]
                if idx[d] < outShape[d] { break }
                oa -= sa[d] * idx[d]; ob -= sb[d] * idx[d]; idx[d] = 0
                d -= 1
            }
        }
    }
}
