import Foundation
import Testing
@testable import CDCTensor

/// Running statistics and the forward formula of batch norm, computed by hand.
@Suite("Batch norm statistics")
struct BatchNormStatsTests {
    /// Per-channel batch mean, biased and unbiased variance over N and the spatial positions.
    static func channelStats(_ x: [Float], shape: [Int]) -> (mean: [Double], biased: [Double], unbiased: [Double]) {
        let n = shape[0], c = shape[1], spatial = shape.dropFirst(2).reduce(1, *)
        var mean = [Double](repeating: 0, count: c), biased = mean, unbiased = mean
        for ch in 0..<c {
            var vals: [Double] = []
            for b in 0..<n { for k in 0..<spatial { vals.append(Double(x[(b * c + ch) * spatial + k])) } }
            let m = vals.reduce(0, +) / Double(vals.count)
            let ss = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +)
            mean[ch] = m; biased[ch] = ss / Double(vals.count); unbiased[ch] = ss / Double(vals.count - 1)
        }
        return (mean, biased, unbiased)
    }

    @Test(arguments: allBackends, [[6, 3], [4, 3, 5], [4, 3, 2, 2], [2, 16, 3, 3]])
    func runningStatisticsAfterOneTrainingStep(backend: KernelBackend, shape: [Int]) {
        let c = shape[1]
        let x = TestData.normal(shape, seed: 1, std: 2, mean: 0.7)
        let oldMean = TestData.normal([c], seed: 2), oldVar = TestData.uniform([c], seed: 3, low: 0.5, high: 2)
        let scale = TestData.uniform([c], seed: 4, low: 0.5, high: 1.5), shift = TestData.normal([c], seed: 5)
        let (y, rm, rv, rm3, rv3) = onBackend(backend) {
            let rm = oldMean.copy(), rv = oldVar.copy()
            let y = Tensor.batchNorm(x, scale: scale, shift: shift, runningMean: rm, runningVar: rv, training: true)
            // A second tensor pair with momentum 0.3.
            let rm3 = oldMean.copy(), rv3 = oldVar.copy()
            _ = Tensor.batchNorm(x, scale: scale, shift: shift, runningMean: rm3, runningVar: rv3, training: true, momentum: 0.3)
            return (y.values, rm.values, rv.values, rm3.values, rv3.values)
        }
        let st = Self.channelStats(x.values, shape: shape)
        let om = oldMean.values.map(Double.init), ov = oldVar.values.map(Double.init)
        let expMean = (0..<c).map { Float(0.9 * om[$0] + 0.1 * st.mean[$0]) }
        let expVar = (0..<c).map { Float(0.9 * ov[$0] + 0.1 * st.unbiased[$0]) }
        expectValues(rm, expMean, atol: 1e-5, "running mean = 0.9·old + 0.1·batch mean")
        expectValues(rv, expVar, atol: 1e-4, "running var = 0.9·old + 0.1·unbiased batch var")
        // The biased variance would be visibly different (guards against using it).
        let wrongVar = (0..<c).map { Float(0.9 * ov[$0] + 0.1 * st.biased[$0]) }
        #expect(maxAbsDiff(rv, wrongVar) > 1e-3)
        expectValues(rm3, (0..<c).map { Float(0.7 * om[$0] + 0.3 * st.mean[$0]) }, atol: 1e-5, "momentum 0.3 mean")
        expectValues(rv3, (0..<c).map { Float(0.7 * ov[$0] + 0.3 * st.unbiased[$0]) }, atol: 1e-4, "momentum 0.3 var")

        // Forward: (x − batch mean) / √(biased var + eps) · scale + shift.
        let spatial = shape.dropFirst(2).reduce(1, *)
        let xv = x.values, sv = scale.values, bv = shift.values
        let expected = (0..<x.count).map { i -> Float in
            let ch = (i / spatial) % c
            return Float((Double(xv[i]) - st.mean[ch]) / (st.biased[ch] + 1e-5).squareRoot() * Double(sv[ch]) + Double(bv[ch]))
        }
        expectValues(y, expected, atol: 1e-4, "training forward")
    }

    @Test(arguments: allBackends)
    func evalModeUsesAndKeepsRunningStatistics(backend: KernelBackend) {
        let shape = [3, 4, 2, 2]
        let x = TestData.normal(shape, seed: 6)
        let rm0 = TestData.normal([4], seed: 7), rv0 = TestData.uniform([4], seed: 8, low: 0.5, high: 2)
        let scale = TestData.uniform([4], seed: 9, low: 0.5, high: 1.5), shift = TestData.normal([4], seed: 10)
        let (y, rm, rv) = onBackend(backend) {
            let rm = rm0.copy(), rv = rv0.copy()
            let y = Tensor.batchNorm(x, scale: scale, shift: shift, runningMean: rm, runningVar: rv, training: false)
            return (y.values, rm.values, rv.values)
        }
        #expect(rm == rm0.values && rv == rv0.values, "eval mode leaves the running statistics alone")
        let xv = x.values, m = rm0.values, v = rv0.values, s = scale.values, b = shift.values
        let expected = (0..<x.count).map { i -> Float in
            let ch = (i / 4) % 4
            return (xv[i] - m[ch]) / (v[ch] + 1e-5).squareRoot() * s[ch] + b[ch]
        }
        expectValues(y, expected, atol: 1e-5, "eval forward")
    }

    /// Several steps converge towards the data's statistics.
    @Test(arguments: allBackends)
    func runningStatisticsOverManySteps(backend: KernelBackend) {
        let shape = [8, 2, 3]
        let x = TestData.normal(shape, seed: 11, std: 3, mean: -1)
        let (rm, rv) = onBackend(backend) {
            let rm = Tensor.zeros([2]), rv = Tensor.ones([2])
            for _ in 0..<60 {
                _ = Tensor.batchNorm(x, scale: .ones([2]), shift: .zeros([2]), runningMean: rm, runningVar: rv, training: true)
            }
            return (rm.values, rv.values)
        }
        let st = Self.channelStats(x.values, shape: shape)
        let decay = pow(0.9, 60.0)
        for ch in 0..<2 {
            #expect(abs(Double(rm[ch]) - st.mean[ch] * (1 - decay)) < 1e-4)
            #expect(abs(Double(rv[ch]) - (st.unbiased[ch] * (1 - decay) + decay)) < 1e-3)
        }
    }
}
