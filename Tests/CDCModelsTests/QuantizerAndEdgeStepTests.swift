import CDCNN
import CDCTensor
import Testing
@testable import CDCModels

@Suite struct QuantizerTests {
    @Test(arguments: 0...4)
    func inferenceSymbolsAndRestore(mask: Int) {
        let q = Quantizer(mask: mask)
        let L = q.levels
        #expect(L == 1 << (4 - mask) && q.bitsPerSymbol == 5 - mask)
        let x = Tensor((-20...20).map { Float($0) / 20 }, shape: [41])
        let s = q.symbols(x)
        #expect(s.allSatisfy { Int($0) >= 1 - L && Int($0) <= L })
        for (v, sym) in zip(x.values, s) {
            #expect(Float(sym) == min(max((v * Float(L)).rounded(.up), Float(1 - L)), Float(L)))
        }
        let restored = q.restore(s, shape: [41]).values
        #expect(zip(restored, s).allSatisfy { $0 == (Float($1) - 0.5) / Float(L) })
        // Eval-mode forward is restore(symbols(x)).
        q.eval()
        #expect(Autograd.noGrad { q(x) }.values == restored)
    }

    @Test func trainingNoiseIsUnbiasedAndGradientPassesThrough() {
        let q = Quantizer(mask: 1)    // L = 8
        q.train()
        let n = 20_000
        let x = Tensor.full([n], 0.3, requiresGrad: true)
        let y = GlobalRandom.withSeed(3) { q(x) }
        // E[ceil(xL + u)] = xL + 1/2, so E[(q − 1/2)/L] = x.
        let mean = y.values.reduce(0, +) / Float(n)
        #expect(abs(mean - 0.3) < 0.005)
        #expect(Set(y.values).count == 2)          // 0.3·8 = 2.4 → q ∈ {2, 3}
        (y * 3).sum().backward()
        #expect(x.grad!.values.allSatisfy { $0 == 3 })
    }

    @Test func trainingClampKeepsSymbolRange() {
        let q = Quantizer(mask: 4)    // L = 1: symbols 0 or 1
        q.train()
        let y = q(Tensor([-0.99, -0.5, 0, 0.5, 0.99], shape: [5]))
        #expect(y.values.allSatisfy { $0 == -0.5 || $0 == 0.5 })
    }
}

/// Equations 5 and 6 of the CDC paper, as `EdgeTrainer.step` routes them: the EC receives
/// ∇L_C only, the AE ∇L_A + ∇L_C/α.
@Suite struct EdgeStepGradientTests {
    func grads(_ m: Module) -> [[Float]] { m.parameters().map { $0.grad?.values ?? [] } }

    @Test(arguments: KernelBackend.allCases)
    func lossRouting(backend: KernelBackend) {
        // Every random draw of this test comes from its own sequence (tests run in parallel).
        GlobalRandom.withSeed(7) { Engine.withBackend(backend) {
            let ae = CDCAutoencoder.image(mask: 3)
            let ec = ElementaryClassifier.image(height: 8, width: 8)
            let x = Tensor.rand([4, 1, 8, 8], seed: 1)
            let labels = [1, 2, 3, 4]
            let alpha: Float = 4
            func forward() -> (Tensor, Tensor) {
                GlobalRandom.seed(11)    // same quantizer noise in every pass
                let xHat = ae(x)
                return (Tensor.mse(xHat, x), Tensor.crossEntropy(ec(xHat), labels: labels))
            }
            // L_A alone.
            ae.zeroGrad(); ec.zeroGrad()
            forward().0.backward()
            let aeA = grads(ae)
            #expect(ec.parameters().allSatisfy { $0.grad == nil })   // L_A never reaches the EC
            // L_C alone, unscaled.
            ae.zeroGrad(); ec.zeroGrad()
            forward().1.backward()
            let aeC = grads(ae), ecC = grads(ec)
            // The trainer's single backward pass.
            let trainer = EdgeTrainer(autoencoder: ae, classifier: ec, alpha: alpha, learningRate: 0)
            ae.zeroGrad(); ec.zeroGrad()
            GlobalRandom.seed(11)
            trainer.step(x, labels: labels)
            for (got, (a, c)) in zip(grads(ae), zip(aeA, aeC)) {
                let want = zip(a, c).map { $0 + $1 / alpha }
                let scale = max(want.map(abs).max() ?? 1, 1e-6)
                #expect(zip(got, want).map { abs($0 - $1) }.max()! <= 1e-4 * scale)
            }
            for (got, want) in zip(grads(ec), ecC) {
                let scale = max(want.map(abs).max() ?? 1, 1e-6)
                #expect(zip(got, want).map { abs($0 - $1) }.max()! <= 1e-4 * scale)
            }
        } }
    }
}

@Suite struct ImageAutoencoderTests {
    /// Both architectures map C×H×W to the same K×H/4×W/4 latent and back (so the quantizer,
    /// containers and rates are shared); the wide one has the parameters its layers imply.
    @Test(arguments: AutoencoderArchitecture.allCases.filter { !$0.isAudio })
    func latentAndOutputShapes(architecture: AutoencoderArchitecture) {
        let ae = architecture.make(channels: 3, mask: 2)
        #expect(ae.architecture == architecture.rawValue && ae.quantizer.mask == 2)
        let x = Tensor.zeros([2, 3, 12, 16])
        let z = Autograd.noGrad { ae.encoder(x) }
        #expect(z.shape == [2, 16, 3, 4])
        #expect(Autograd.noGrad { ae(x) }.shape == [2, 3, 12, 16])
        if architecture == .wide {
            let conv = { (i: Int, o: Int, k: Int) in i * o * k * k + o }
            let encoder = conv(3, 64, 5) + conv(64, 128, 5) + conv(128, 128, 3) + conv(128, 16, 3)
            let decoder = conv(16, 128, 3) + conv(128, 128, 3) + conv(128, 64, 4) + conv(64, 3, 4)
            #expect(ae.encoder.parameterCount == encoder && ae.decoder.parameterCount == decoder)
        }
    }
}
