import CDCTensor
import Foundation
import Testing
@testable import CDCNN

@Suite struct ScheduleTests {
    /// StepSchedule(base 0.1, stepSize 3, gamma 0.5) = torch's StepLR(step_size=3, gamma=0.5).
    @Test func stepMatchesStepLR() throws {
        let expected = try NNFixtures.tensor("sched.step_lr").values
        let s = StepSchedule(base: 0.1, stepSize: 3, gamma: 0.5)
        expectAllClose((0..<expected.count).map { s.learningRate(at: $0) }, expected, rtol: 1e-6, atol: 0)
    }

    /// After the warm-up, CosineSchedule(base, total, warmup, minimum) at step `warmup + i` is
    /// torch's CosineAnnealingLR(T_max = total − warmup, eta_min = minimum) at step i, up to
    /// and including T_max.
    @Test func cosineMatchesCosineAnnealingLR() throws {
        let expected = try NNFixtures.tensor("sched.cosine").values
        #expect(expected.count == 11)
        let s = CosineSchedule(base: 0.1, totalSteps: 12, warmupSteps: 2, minimum: 0.001)
        expectAllClose((0..<expected.count).map { s.learningRate(at: 2 + $0) }, expected, rtol: 1e-5, atol: 1e-7)
    }

    /// The whole schedule, warm-up included, equals torch's LinearLR(1/warmup → 1 over
    /// warmup − 1 steps) followed by CosineAnnealingLR (SequentialLR, milestone = warmup).
    @Test func warmupCosineMatchesSequentialLR() throws {
        let expected = try NNFixtures.tensor("sched.warmup_cosine").values
        let s = CosineSchedule(base: 0.1, totalSteps: 12, warmupSteps: 2, minimum: 0.001)
        expectAllClose((0..<expected.count).map { s.learningRate(at: $0) }, expected, rtol: 1e-5, atol: 1e-7)
    }

    /// The closed form: linear warm-up base·(step+1)/warmup, then
    /// minimum + (base − minimum)·½(1 + cos(π·t)), t = (step − warmup)/(total − warmup);
    /// it stays at `minimum` after `totalSteps`.
    @Test func cosineClosedForm() {
        let s = CosineSchedule(base: 1, totalSteps: 14, warmupSteps: 4, minimum: 0.1)
        expectAllClose((0..<4).map { s.learningRate(at: $0) }, [0.25, 0.5, 0.75, 1])
        for step in 4...14 {
            let t = Double(step - 4) / 10
            let e = 0.1 + 0.9 * 0.5 * (1 + cos(Double.pi * t))
            expectAllClose([s.learningRate(at: step)], [Float(e)], "step \(step)")
        }
        #expect(abs(s.learningRate(at: 9) - 0.55) < 1e-6)   // half way: the mean of base and minimum
        for step in [15, 20, 1000] { #expect(abs(s.learningRate(at: step) - 0.1) < 1e-7, "step \(step)") }

        let plain = CosineSchedule(base: 0.5, totalSteps: 4)
        expectAllClose((0...4).map { plain.learningRate(at: $0) }, [0.5, 0.4267767, 0.25, 0.0732233, 0], atol: 1e-6)
    }

    /// StepSchedule's warm-up is linear, then the decay counts steps from the end of the warm-up;
    /// gamma defaults to 0.1.
    @Test func stepWithWarmup() {
        let s = StepSchedule(base: 1, stepSize: 2, gamma: 0.5, warmupSteps: 3)
        expectAllClose((0..<9).map { s.learningRate(at: $0) },
                       [1.0 / 3, 2.0 / 3, 1, 1, 1, 0.5, 0.5, 0.25, 0.25])
        let d = StepSchedule(base: 2, stepSize: 1)
        expectAllClose((0..<3).map { d.learningRate(at: $0) }, [2, 0.2, 0.02])
    }

    /// A schedule drives an optimizer through `learningRate` (the intended use).
    @Test func drivesAnOptimizer() {
        let p = Tensor([0], shape: [1], requiresGrad: true)
        let optimizer = SGD([p], learningRate: 0)
        let schedule = StepSchedule(base: 0.1, stepSize: 3, gamma: 0.5)
        var expected: Float = 0
        for step in 0..<7 {
            optimizer.learningRate = schedule.learningRate(at: step)
            p.grad = Tensor([1], shape: [1])
            optimizer.step()
            expected -= schedule.learningRate(at: step)
        }
        expectAllClose(p.values, [expected])
    }
}

