/// The partition search (AGLOP-like): over measured configurations of split × settings, the
/// point with the fewest bits within an accuracy-loss bound, the point with the lowest
/// end-to-end latency at a bandwidth, and the frontiers they lie on.
public enum PartitionSearch {
    /// The rows within `maxLoss` of `reference` accuracy (both fractions, e.g. 0.01 for 1 pp).
    public static func admissible(_ rows: [CoInferenceRow], reference: Float, maxLoss: Float) -> [CoInferenceRow] {
        rows.filter { reference - $0.accuracy <= maxLoss + 1e-6 }
    }

    /// Fewest bits per sample among the admissible rows (ties: the more accurate, then the faster).
    public static func fewestBits(_ rows: [CoInferenceRow], reference: Float, maxLoss: Float) -> CoInferenceRow? {
        admissible(rows, reference: reference, maxLoss: maxLoss).min {
            ($0.bitsPerSample, -$0.accuracy, $0.deviceMs + $0.serverMs) < ($1.bitsPerSample, -$1.accuracy, $1.deviceMs + $1.serverMs)
        }
    }

    /// Lowest end-to-end latency (device + bits / bandwidth + server) at `bitsPerSecond` among
    /// the admissible rows (ties: the more accurate).
    public static func lowestLatency(_ rows: [CoInferenceRow], bitsPerSecond: Double, reference: Float,
                                     maxLoss: Float) -> CoInferenceRow? {
        admissible(rows, reference: reference, maxLoss: maxLoss).min {
            ($0.latencyMs(bitsPerSecond: bitsPerSecond), -$0.accuracy) < ($1.latencyMs(bitsPerSecond: bitsPerSecond), -$1.accuracy)
        }
    }

    /// The Pareto frontier of `cost` against accuracy: every row that no other row beats on both
    /// (no more cost and no less accuracy, one of them strictly), sorted by cost.
    public static func frontier(_ rows: [CoInferenceRow], cost: (CoInferenceRow) -> Double) -> [CoInferenceRow] {
        let sorted = rows.sorted { (cost($0), -$0.accuracy) < (cost($1), -$1.accuracy) }
        var out: [CoInferenceRow] = []
        var best = -Float.infinity
        for r in sorted where r.accuracy > best {
            out.append(r); best = r.accuracy
        }
        return out
    }

    /// The bits-per-sample frontier.
    public static func bitsFrontier(_ rows: [CoInferenceRow]) -> [CoInferenceRow] { frontier(rows, cost: \.bitsPerSample) }

    /// The latency frontier at `bitsPerSecond`.
    public static func latencyFrontier(_ rows: [CoInferenceRow], bitsPerSecond: Double) -> [CoInferenceRow] {
        frontier(rows) { $0.latencyMs(bitsPerSecond: bitsPerSecond) }
    }
}
