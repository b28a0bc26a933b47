import CDCTensor
import Testing
@testable import CDCNN

/// The optimizer configurations of `optimizers.safetensors` (see `scripts/make_optimizer_fixtures.py`).
enum OptimizerConfig: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sgd, sgdMomentum = "sgd_momentum", sgdNesterovWD = "sgd_nesterov_wd", sgdMomentumWD = "sgd_momentum_wd"
    case adam, adamWD = "adam_wd", adamW = "adamw", adamBetas = "adam_betas"

    var testDescription: String { rawValue }

    /// Our optimizer with the same hyper-parameters as the PyTorch one of the fixture.
    func make(_ parameters: [Tensor]) -> any Optimizer {
        switch self {
        case .sgd: return SGD(parameters, learningRate: 0.1)
        case .sgdMomentum: return SGD(parameters, learningRate: 0.1, momentum: 0.9)
        case .sgdNesterovWD: return SGD(parameters, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01)
        case .sgdMomentumWD: return SGD(parameters, learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4)
        case .adam: return Adam(parameters, learningRate: 1e-2)
        case .adamWD: return Adam(parameters, learningRate: 1e-2, weightDecay: 0.1)
        case .adamW: return AdamW(parameters, learningRate: 1e-2, weightDecay: 0.1)
        case .adamBetas: return Adam(parameters, learningRate: 1e-2, beta1: 0.8, beta2: 0.9, epsilon: 1e-6)
        }
    }
}

@Suite struct OptimizerTests {
    static let steps = 5

    /// Five steps from the fixture's initial values and gradients; after every step both
    /// parameters must equal PyTorch's. Parameter `b` has no gradient at step 2 (the fixture
    /// lacks `grad.b.step2`), so that step must leave it and its optimizer state untouched.
    @Test(arguments: OptimizerConfig.allCases)
    func matchesPyTorch(_ config: OptimizerConfig) throws {
        let names = ["a", "b"]
        let params = try names.map { NNData.leaf(try NNFixtures.tensor("param.\($0).init")) }
        let optimizer = config.make(params)
        #expect(optimizer.parameters.count == 2)
        var sawSkip = false
        for t in 0..<Self.steps {
            for (name, p) in zip(names, params) {
                if let g = try NNFixtures.optionalTensor("grad.\(name).step\(t)") {
                    p.grad = Tensor(g.values, shape: g.shape)
                } else {
                    p.grad = nil
                    sawSkip = true
                }
            }
            optimizer.step()
            for (name, p) in zip(names, params) {
                let expected = try NNFixtures.tensor("\(config.rawValue).\(name).step\(t)")
                expectAllClose(p, expected, rtol: 1e-5, atol: 1e-6, "\(config.rawValue): \(name) after step \(t)")
            }
        }
        #expect(sawSkip, "the fixture should leave one gradient out")
    }

    /// The fixture's skipped step really is a no-op for `b` (so the check above covers skipping).
    @Test func fixtureSkipsOneStep() throws {
        #expect(try NNFixtures.optionalTensor("grad.b.step2") == nil)
        for config in OptimizerConfig.allCases {
            let before = try NNFixtures.tensor("\(config.rawValue).b.step1")
            let after = try NNFixtures.tensor("\(config.rawValue).b.step2")
            #expect(before.values == after.values, "\(config.rawValue)")
        }
    }

    /// A parameter whose gradient is nil is not touched, even with weight decay (which would
    /// otherwise shrink it) and on the first step.
    @Test(arguments: OptimizerConfig.allCases)
    func nilGradientIsSkipped(_ config: OptimizerConfig) {
        let withGrad = Tensor([1, -2, 3], shape: [3], requiresGrad: true)
        let without = Tensor([0.5, -0.25, 4, 8], shape: [2, 2], requiresGrad: true)
        let optimizer = config.make([withGrad, without])
        withGrad.grad = Tensor([0.1, 0.2, -0.3], shape: [3])
        for _ in 0..<3 { optimizer.step() }
        #expect(without.values == [0.5, -0.25, 4, 8])
        #expect(without.grad == nil)
        #expect(withGrad.values != [1, -2, 3])
    }

    /// Updates happen in place: the parameter objects a module holds see the new values.
    @Test func updatesModuleParametersInPlace() {
        let layer = Linear(3, 2)
        let weight = layer.weight
        let before = weight.values
        let optimizer = SGD(layer.parameters(), learningRate: 0.5)
        layer.weight.grad = Tensor.ones([2, 3])
        layer.bias!.grad = Tensor.ones([2])
        optimizer.step()
        #expect(layer.weight === weight)
        expectAllClose(layer.weight.values, before.map { $0 - 0.5 })
    }

    /// The gradient is read, never written.
    @Test(arguments: OptimizerConfig.allCases)
    func gradientIsNotModified(_ config: OptimizerConfig) {
        let p = Tensor([1, 2, 3, 4], shape: [4], requiresGrad: true)
        let g = Tensor([0.5, -0.5, 1, -1], shape: [4])
        p.grad = g
        let optimizer = config.make([p])
        optimizer.step(); optimizer.step()
        #expect(g.values == [0.5, -0.5, 1, -1])
    }

    /// A changed learning rate (what a schedule does) takes effect at the next step.
    @Test func learningRateChangeTakesEffect() {
        let p = Tensor([1, 1], shape: [2], requiresGrad: true)
        let optimizer = SGD([p], learningRate: 0.1)
        p.grad = Tensor([1, 2], shape: [2])
        optimizer.step()
        expectAllClose(p.values, [0.9, 0.8])
        optimizer.learningRate = 0.01
        optimizer.step()
        expectAllClose(p.values, [0.89, 0.78])
    }

    /// Hand-computed SGD with momentum and Nesterov on one scalar (independent of the fixture):
    /// d = g + wd·w; buf = d (first step) then μ·buf + d; w −= lr·(d + μ·buf) for Nesterov.
    @Test func nesterovByHand() {
        let p = Tensor([1], shape: [1], requiresGrad: true)
        let optimizer = SGD([p], learningRate: 0.1, momentum: 0.5, nesterov: true, weightDecay: 0.1)
        var w: Double = 1, buf: Double = 0
        for (i, g) in [1.0, -2.0, 0.5].enumerated() {
            p.grad = Tensor([Float(g)], shape: [1])
            optimizer.step()
            let d = g + 0.1 * w
            buf = i == 0 ? d : 0.5 * buf + d
            w -= 0.1 * (d + 0.5 * buf)
            expectAllClose(p.values, [Float(w)], "step \(i)")
        }
    }

    /// Adam's first step moves every coordinate by about lr·sign(g) (bias correction), whatever
    /// the gradient's scale.
    @Test func adamFirstStepIsLearningRateSized() {
        let p = Tensor([0, 0, 0], shape: [3], requiresGrad: true)
        let optimizer = Adam([p], learningRate: 0.01)
        p.grad = Tensor([1e3, -1e-3, 2], shape: [3])
        optimizer.step()
        expectAllClose(p.values, [-0.01, 0.01, -0.01], rtol: 1e-4)
    }

    /// AdamW's defaults are PyTorch's (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01);
    /// Adam's weight decay defaults to 0.
    @Test func defaults() {
        let p = Tensor([1], shape: [1], requiresGrad: true)
        let adamW = AdamW([p])
        #expect(adamW.learningRate == 1e-3 && adamW.beta1 == 0.9 && adamW.beta2 == 0.999)
        #expect(adamW.epsilon == 1e-8 && adamW.weightDecay == 0.01)
        let adam = Adam([p])
        #expect(adam.learningRate == 1e-3 && adam.weightDecay == 0)
        let sgd = SGD([p], learningRate: 0.1)
        #expect(sgd.momentum == 0 && !sgd.nesterov && sgd.weightDecay == 0)
    }

    /// `zeroGrad()` clears every parameter's gradient.
    @Test func zeroGrad() {
        let a = Tensor([1], shape: [1], requiresGrad: true), b = Tensor([2], shape: [1], requiresGrad: true)
        a.grad = Tensor([1], shape: [1]); b.grad = Tensor([1], shape: [1])
        let optimizer: any Optimizer = Adam([a, b])
        optimizer.zeroGrad()
        #expect(a.grad == nil && b.grad == nil)
    }

    /// Gradients produced by `backward()` (possibly in a oneDNN layout) are used as well as
    /// assigned ones: a Conv2d trained by SGD equals the hand-applied update.
    @Test func stepsOnBackwardGradients() {
        let conv = Conv2d(2, 3, kernelSize: 3, padding: 1)
        let w0 = conv.weight.values, b0 = conv.bias!.values
        let x = NNData.normal([2, 2, 5, 5], seed: 3)
        conv(x).square().sum().backward()
        let gw = conv.weight.grad!.values, gb = conv.bias!.grad!.values
        SGD(conv.parameters(), learningRate: 0.01).step()
        expectAllClose(conv.weight.values, zip(w0, gw).map { $0 - 0.01 * $1 })
        expectAllClose(conv.bias!.values, zip(b0, gb).map { $0 - 0.01 * $1 })
    }
}
