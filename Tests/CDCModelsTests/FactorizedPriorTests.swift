import CDCModels
import CDCNN
import CDCTensor
import Foundation
import Testing

/// The learned factorized prior: its code lengths, its integer tables and the rate term's gradients.
@Suite struct FactorizedPriorTests {
    /// A prior with distinct, non-trivial parameters per channel.
    func prior(channels: Int = 3) -> FactorizedPrior {
        let p = FactorizedPrior(channels: channels)
        p.logits.assign(Tensor((0..<(channels * 3)).map { Float($0 % 4) * 0.3 - 0.4 }, shape: [channels, 3]))
        p.means.assign(Tensor((0..<(channels * 3)).map { Float($0 % 5) * 0.35 - 0.7 }, shape: [channels, 3]))
        p.logScales.assign(Tensor((0..<(channels * 3)).map { -1.5 + Float($0 % 3) * 0.4 }, shape: [channels, 3]))
        return p
    }

    /// Restored latents (q − ½)/L of random symbols, and the symbols as u = q + L − 1.
    func latents(mask: Int, shape: [Int], seed: UInt64) -> (Tensor, [Int]) {
        let L = 1 << (4 - mask)
        var g = SeededGenerator(seed: seed)
        let u = (0..<shape.reduce(1, *)).map { _ in Int(g.next() % UInt64(2 * L)) }
        return (Tensor(u.map { (Float($0 - L + 1) - 0.5) / Float(L) }, shape: shape), u)
    }

    @Test(arguments: 0...4)
    func bitsAreMinusLog2OfTheTableProbabilities(mask: Int) {
        let p = prior(), shape = [2, 3, 2, 2]
        let (xHat, u) = latents(mask: mask, shape: shape, seed: UInt64(mask))
        let probs = p.probabilities(mask: mask)
        for row in probs { #expect(abs(row.reduce(0, +) - 1) < 1e-9 && row.allSatisfy { $0 > 0 }) }
        var want = 0.0
        for (i, s) in u.enumerated() { want -= log2(probs[(i / 4) % 3][s]) }   // channel of element i
        let got = Double(Autograd.noGrad { p.bits(xHat, levels: 1 << (4 - mask)) }.item)
        #expect(abs(got - want) <= 1e-3 * want)
    }

    @Test(arguments: 0...4)
    func frequencyTablesArePositiveAndSumToTheTotal(mask: Int) {
        let tables = prior().frequencyTables(mask: mask, total: 1 << 12)
        #expect(tables.count == 3)
        for t in tables {
            #expect(t.count == 2 << (4 - mask))
            #expect(t.allSatisfy { $0 >= 1 } && t.reduce(0, +) == 1 << 12)
        }
        // Deterministic: the same parameters give the same integers.
        #expect(prior().frequencyTables(mask: mask, total: 1 << 12) == tables)
        #expect(FactorizedPrior.quantize([1e-12, 0.5, 0.5 - 1e-12], total: 8).reduce(0, +) == 8)
    }

    @Test func rateGradientMatchesFiniteDifferences() {
        let p = prior(channels: 2)
        // Latents strictly inside the bins' range so that the masks of the outer bins stay fixed.
        let x = Tensor([-0.2, 0.1, 0.3, -0.45, 0.05, 0.2, -0.1, 0.4], shape: [1, 2, 2, 2], requiresGrad: true)
        let loss = p.bits(x, levels: 4)
        loss.backward()
        func f() -> Double { Double(Autograd.noGrad { p.bits(x, levels: 4) }.item) }
        let eps: Float = 1e-2
        for (t, i) in [(p.means, 1), (p.logScales, 4), (p.logits, 2), (x, 3)] {
            let analytic = Double(t.grad!.values[i])
            let ptr = t.mutablePointer, v = ptr[i]
            ptr[i] = v + eps; let up = f()
            ptr[i] = v - eps; let down = f()
            ptr[i] = v
            let numeric = (up - down) / Double(2 * eps)
            #expect(abs(analytic - numeric) <= 0.03 * max(abs(numeric), 0.05), "analytic \(analytic) vs numeric \(numeric)")
        }
    }

    @Test func rateWeightRoutesTheRateIntoTheEncoderOnlyWhenPositive() {
        GlobalRandom.withSeed(3) {
            let x = Tensor.rand([4, 1, 8, 8], seed: 5), labels = [0, 1, 2, 3]
            func encoderGrads(rateWeight: Float, withPrior: Bool) -> ([Float], [Float]) {
                let (ae, ec, pr) = GlobalRandom.withSeed(9) {
                    (CDCAutoencoder.image(mask: 2), ElementaryClassifier.image(height: 8, width: 8), FactorizedPrior(channels: 16))
                }
                // An asymmetric prior: with the symmetric initial one, latents near 0 sit between two
                // equally likely symbols and the rate's gradient is exactly 0.
                pr.means.assign(pr.means + 0.3)
                let t = EdgeTrainer(autoencoder: ae, classifier: ec, alpha: 8, learningRate: 0,
                                    prior: withPrior ? pr : nil, rateWeight: rateWeight)
                GlobalRandom.seed(11)
                let r = t.step(x, labels: labels)
                if withPrior { #expect(r.rate > 0) }
                return (ae.encoder.parameters()[0].grad!.values, withPrior ? pr.means.grad!.values : [])
            }
            let (plain, _) = encoderGrads(rateWeight: 0, withPrior: false)
            let (fitOnly, priorGrad) = encoderGrads(rateWeight: 0, withPrior: true)
            let (withRate, _) = encoderGrads(rateWeight: 1, withPrior: true)
            #expect(zip(plain, fitOnly).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($0)) })   // λ = 0: encoder untouched
            #expect(priorGrad.contains { $0 != 0 })                                             // … but the prior learns
            #expect(zip(plain, withRate).contains { abs($0 - $1) > 1e-6 })                      // λ > 0: rate reaches it
        }
    }
}
