import CDCModels
import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation
import Testing

/// `vae-cls`: the learned-centre quantizer, its straight-through gradient, the categorical
/// prior's code lengths, the rate penalty and the model's state names.
@Suite struct VAEClassifierTests {
    func quantizer(_ centres: [Float]) -> CentreQuantizer {
        let q = CentreQuantizer(levels: centres.count)
        q.centres.assign(Tensor(centres, shape: [centres.count]))
        return q
    }

    @Test func forwardPicksTheNearestCentre() {
        let q = quantizer([-1, 0.5, 2])
        let x = Tensor([-3, -0.3, -0.2, 0.6, 1.2, 1.3, 5], shape: [7])
        #expect(q.symbols(x) == [0, 0, 1, 1, 1, 2, 2])
        let out = Autograd.noGrad { q.quantize(x) }
        #expect(out.values.values == [-1, -1, 0.5, 0.5, 0.5, 2, 2])
        // The assignment is one-hot forward.
        #expect(out.assignment.values == [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1])
    }

    /// q_soft = Σ softmax(−σ(x − c)²)ₗ cₗ in double precision.
    func softValue(_ x: Double, _ c: [Double], sigma: Double = 1) -> Double {
        let a = c.map { -sigma * ($0 - x) * ($0 - x) }, m = a.max()!
        let e = a.map { exp($0 - m) }, s = e.reduce(0, +)
        return zip(e, c).map { $0 * $1 / s }.reduce(0, +)
    }

    @Test func backwardIsTheSoftAssignmentsGradient() {
        let centres: [Float] = [-0.8, 0.1, 0.9]
        let q = quantizer(centres)
        let xs: [Float] = [-1.1, -0.3, 0.2, 0.45, 1.4]
        let w: [Float] = [0.7, -1.2, 0.4, 1.5, -0.6]
        let x = Tensor(xs, shape: [5], requiresGrad: true)
        (q.quantize(x).values * Tensor(w, shape: [5])).sum().backward()
        let gx = x.grad!.values, gc = q.centres.grad!.values
        let cd = centres.map(Double.init), h = 1e-5
        func loss(_ xv: [Double], _ c: [Double]) -> Double { zip(xv, w).map { softValue($0, c) * Double($1) }.reduce(0, +) }
        let xd = xs.map(Double.init)
        for i in 0..<xs.count {
            var p = xd, m = xd; p[i] += h; m[i] -= h
            let fd = (loss(p, cd) - loss(m, cd)) / (2 * h)
            #expect(abs(Double(gx[i]) - fd) < 1e-3 + 1e-3 * abs(fd), "x[\(i)]: \(gx[i]) vs \(fd)")
        }
        for l in 0..<centres.count {
            var p = cd, m = cd; p[l] += h; m[l] -= h
            let fd = (loss(xd, p) - loss(xd, m)) / (2 * h)
            #expect(abs(Double(gc[l]) - fd) < 1e-3 + 1e-3 * abs(fd), "c[\(l)]: \(gc[l]) vs \(fd)")
        }
    }

    @Test func priorBitsAreTheHardSymbolsCodeLength() {
        let prior = CategoricalPrior(channels: 2, levels: 3)
        let lg: [Float] = [0.5, -1, 0.2, -0.3, 1.1, 0]
        prior.logits.assign(Tensor(lg, shape: [2, 3]))
        let q = quantizer([-1, 0, 1])
        // [N = 2, K = 2, P = 2] latents.
        let x = Tensor([-0.9, 0.1, 0.8, 0.7, -1.2, -0.2, 0.4, 1.3], shape: [2, 2, 2])
        let out = q.quantize(x)
        let bits = prior.bits(out.assignment, perChannel: 2).item
        let probs = prior.probabilities()
        var want = 0.0
        for (i, s) in out.symbols.enumerated() { want -= log2(probs[(i / 2) % 2][Int(s)]) }
        #expect(abs(Double(bits) - want) < 1e-4 * want)
    }

    @Test func ratePenaltyIsZeroBelowTheTargetAndLinearAbove() {
        for (r, want, slope) in [(0.3, 0.0, 0.0), (0.49, 0.0, 0.0), (0.6, 0.2, 2.0), (1.5, 2.0, 2.0)] as [(Float, Float, Float)] {
            let bpp = Tensor([r], shape: [], requiresGrad: true)
            let p = VAEClassifier.ratePenalty(bpp, target: 0.5, weight: 2)
            p.backward()
            #expect(abs(p.item - want) < 1e-6)
            #expect(abs(bpp.grad!.item - slope) < 1e-6)
        }
    }

    @Test func stateNamesAreStableAndSurviveSafetensors() throws {
        let a = GlobalRandom.withSeed(3) { VAEClassifier(levels: 3, withDecoder: true) }
        let names = Set(Checkpoint.stateDict(a).keys)
        for n in ["encoder.0.weight", "encoder.4.weight", "encoder.5.running_var", "quantizer.centres", "prior.logits",
                  "classifier.0.weight", "classifier.3.conv2.weight", "classifier.4.shortcut.0.weight", "classifier.7.weight",
                  "decoder.4.bias"] {
            #expect(names.contains(n), "missing \(n)")
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vae-cls-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.save(a, to: url)
        let b = GlobalRandom.withSeed(99) { VAEClassifier(levels: 3, withDecoder: true) }
        try Checkpoint.load(into: b, from: url)
        let x = Tensor((0..<(2 * 28 * 28)).map { Float($0 % 29) / 29 }, shape: [2, 1, 28, 28])
        a.eval(); b.eval()
        let (sa, shape) = a.encode(x), (sb, _) = b.encode(x)
        #expect(shape == [2, 16, 7, 7] && sa == sb)
        #expect(a.classify(sa, shape: shape).values == b.classify(sb, shape: shape).values)
        // A model with another L refuses the file.
        #expect(throws: (any Error).self) { try Checkpoint.load(into: VAEClassifier(levels: 2), from: url) }
    }

    @Test func aTrainingStepMovesEncoderCentresAndPrior() {
        let model = GlobalRandom.withSeed(1) { VAEClassifier(levels: 2) }
        let t = VAEClassifierTrainer(model: model, learningRate: 0.05, rateTarget: 0.1)
        let x = GlobalRandom.with { g in Tensor.uniform([8, 1, 28, 28], generator: &g) }
        let before = (model.quantizer.centres.values, model.prior.logits.values, model.encoder.children()[0].1.parameters()[0].values)
        let r = t.step(x, labels: [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(r.classification.isFinite && r.rate > 0.1 && r.rate <= 1.0001)
        #expect(model.quantizer.centres.values != before.0)
        #expect(model.prior.logits.values != before.1)
        #expect(model.encoder.children()[0].1.parameters()[0].values != before.2)
    }
}
