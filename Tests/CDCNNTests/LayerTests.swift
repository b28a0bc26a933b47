import CDCTensor
import Foundation
import Testing
@testable import CDCNN

@Suite struct LayerTests {
    // MARK: Shapes

    /// (label, layer, input shape, expected output shape).
    static func shapeCases() -> [(String, Module, [Int], [Int])] {
        [
            ("Linear", Linear(3, 4), [2, 3], [2, 4]),
            ("Linear no bias", Linear(3, 4, bias: false), [5, 3], [5, 4]),
            ("Conv2d", Conv2d(3, 4, kernelSize: 3), [2, 3, 7, 6], [2, 4, 5, 4]),
            ("Conv2d s2 p1", Conv2d(3, 4, kernelSize: 3, stride: 2, padding: 1), [2, 3, 8, 8], [2, 4, 4, 4]),
            ("Conv2d dilation groups", Conv2d(4, 6, kernelSize: 3, padding: 2, dilation: 2, groups: 2), [1, 4, 6, 6], [1, 6, 6, 6]),
            ("Conv1d", Conv1d(2, 3, kernelSize: 3, padding: 1), [2, 2, 10], [2, 3, 10]),
            ("Conv1d s2", Conv1d(2, 4, kernelSize: 4, stride: 2, groups: 2), [1, 2, 10], [1, 4, 4]),
            ("ConvTranspose2d", ConvTranspose2d(4, 2, kernelSize: 4, stride: 2, padding: 1), [1, 4, 5, 5], [1, 2, 10, 10]),
            ("ConvTranspose2d output padding", ConvTranspose2d(4, 2, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1),
             [2, 4, 3, 4], [2, 2, 6, 8]),
            ("ConvTranspose2d groups", ConvTranspose2d(4, 6, kernelSize: 2, groups: 2), [1, 4, 3, 3], [1, 6, 4, 4]),
            ("ConvTranspose1d", ConvTranspose1d(3, 2, kernelSize: 4, stride: 2, padding: 1), [2, 3, 8], [2, 2, 16]),
            ("BatchNorm1d 2-D", BatchNorm1d(3), [4, 3], [4, 3]),
            ("BatchNorm1d 3-D", BatchNorm1d(3), [2, 3, 5], [2, 3, 5]),
            ("BatchNorm2d", BatchNorm2d(3), [2, 3, 4, 4], [2, 3, 4, 4]),
            ("ReLU", ReLU(), [2, 3, 4], [2, 3, 4]),
            ("LeakyReLU", LeakyReLU(0.2), [2, 3], [2, 3]),
            ("Tanh", Tanh(), [7], [7]),
            ("Sigmoid", Sigmoid(), [2, 2], [2, 2]),
            ("Identity", Identity(), [2, 5], [2, 5]),
            ("Flatten", Flatten(), [2, 3, 4, 4], [2, 48]),
            ("Dropout", Dropout(0.3), [3, 4], [3, 4]),
            ("MaxPool2d", MaxPool2d(2), [1, 2, 6, 6], [1, 2, 3, 3]),
            ("MaxPool2d s2 p1", MaxPool2d(3, stride: 2, padding: 1), [1, 2, 6, 6], [1, 2, 3, 3]),
            ("AvgPool2d", AvgPool2d(2), [2, 3, 4, 6], [2, 3, 2, 3]),
            ("AvgPool2d s1", AvgPool2d(3, stride: 1), [1, 1, 5, 5], [1, 1, 3, 3]),
            ("MaxPool1d", MaxPool1d(2), [1, 2, 8], [1, 2, 4]),
            ("AvgPool1d", AvgPool1d(4, stride: 2), [1, 2, 8], [1, 2, 3]),
            ("GlobalAvgPool", GlobalAvgPool(), [2, 3, 4, 4], [2, 3]),
            ("Sequential", Sequential(Conv2d(1, 2, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2), Flatten(), Linear(8, 3)),
             [2, 1, 4, 4], [2, 3]),
        ]
    }

    @Test func outputShapes() {
        for (label, layer, input, expected) in Self.shapeCases() {
            let y = layer(NNData.normal(input, seed: 1))
            #expect(y.shape == expected, "\(label): output shape \(y.shape), expected \(expected)")
        }
    }

    // MARK: Values against the functional ops

    /// Linear is x·Wᵀ + b (checked by hand) and equals `Tensor.linear`.
    @Test func linearValues() {
        let l = Linear(3, 2)
        #expect(l.weight.shape == [2, 3] && l.bias!.shape == [2])
        let x = NNData.normal([4, 3], seed: 2)
        let y = l(x)
        let w = l.weight.values, b = l.bias!.values, xv = x.values
        var expected: [Float] = []
        for n in 0..<4 { for o in 0..<2 { expected.append(b[o] + (0..<3).reduce(0) { $0 + xv[n * 3 + $1] * w[o * 3 + $1] }) } }
        expectAllClose(y.values, expected, rtol: 1e-5, atol: 1e-6)
        expectAllClose(y, Tensor.linear(x, weight: l.weight, bias: l.bias))
        let nb = Linear(3, 2, bias: false)
        #expect(nb.bias == nil)
        expectAllClose(nb(x), Tensor.linear(x, weight: nb.weight, bias: nil))
    }

    /// Every hyper-parameter reaches the op: stride, padding, dilation, groups (and no bias).
    @Test func conv2dEqualsFunctional() {
        let x = NNData.normal([2, 4, 9, 8], seed: 3)
        let c = Conv2d(4, 6, kernelSize: 3, stride: 2, padding: 1, dilation: 2, groups: 2)
        #expect(c.weight.shape == [6, 2, 3, 3] && c.bias!.shape == [6])
        expectAllClose(c(x), Tensor.conv2d(x, weight: c.weight, bias: c.bias, stride: (2, 2), padding: (1, 1),
                                           dilation: (2, 2), groups: 2), "conv2d")
        let nb = Conv2d(4, 2, kernelSize: 1, bias: false)
        #expect(nb.bias == nil)
        expectAllClose(nb(x), Tensor.conv2d(x, weight: nb.weight), "conv2d 1×1 without bias")
        // And a 1×1 convolution is a per-pixel linear map (checked by hand at one pixel).
        let y = nb(x).values, xv = x.values, w = nb.weight.values
        let (n, h, wd) = (1, 4, 5), hw = 9 * 8
        for o in 0..<2 {
            let e = (0..<4).reduce(Float(0)) { $0 + w[o * 4 + $1] * xv[(n * 4 + $1) * hw + h * 8 + wd] }
            #expect(abs(y[(n * 2 + o) * hw + h * 8 + wd] - e) < 1e-5)
        }
    }

    @Test func conv1dEqualsFunctional() {
        let x = NNData.normal([2, 4, 11], seed: 4)
        let c = Conv1d(4, 6, kernelSize: 3, stride: 2, padding: 2, dilation: 2, groups: 2)
        #expect(c.weight.shape == [6, 2, 3])
        expectAllClose(c(x), Tensor.conv1d(x, weight: c.weight, bias: c.bias, stride: 2, padding: 2, dilation: 2, groups: 2))
    }

    @Test func convTranspose2dEqualsFunctional() {
        let x = NNData.normal([2, 4, 3, 4], seed: 5)
        let c = ConvTranspose2d(4, 6, kernelSize: 3, stride: 2, padding: 1, outputPadding: 1, groups: 2)
        #expect(c.weight.shape == [4, 3, 3, 3] && c.bias!.shape == [6])
        let y = c(x)
        #expect(y.shape == [2, 6, 6, 8])
        expectAllClose(y, Tensor.convTranspose2d(x, weight: c.weight, bias: c.bias, stride: (2, 2), padding: (1, 1),
                                                 outputPadding: (1, 1), groups: 2))
        let d = ConvTranspose2d(4, 2, kernelSize: 2, dilation: 2, bias: false)
        expectAllClose(d(x), Tensor.convTranspose2d(x, weight: d.weight, dilation: (2, 2)), "dilated, no bias")
    }

    @Test func convTranspose1dEqualsFunctional() {
        let x = NNData.normal([2, 4, 5], seed: 6)
        let c = ConvTranspose1d(4, 2, kernelSize: 4, stride: 3, padding: 1, outputPadding: 2, groups: 2)
        #expect(c.weight.shape == [4, 1, 4])
        expectAllClose(c(x), Tensor.convTranspose1d(x, weight: c.weight, bias: c.bias, stride: 3, padding: 1,
                                                    outputPadding: 2, groups: 2))
    }

    /// A 1×1 transposed convolution with stride 1 is the transposed per-pixel map (by hand).
    @Test func convTransposeByHand() {
        let c = ConvTranspose2d(2, 3, kernelSize: 1)
        let x = NNData.normal([1, 2, 2, 2], seed: 7)
        let y = c(x).values, xv = x.values, w = c.weight.values, b = c.bias!.values
        for o in 0..<3 { for p in 0..<4 {
            let e = b[o] + (0..<2).reduce(Float(0)) { $0 + w[$1 * 3 + o] * xv[$1 * 4 + p] }
            #expect(abs(y[o * 4 + p] - e) < 1e-5)
        } }
    }

    @Test func activationValues() {
        let x = Tensor([-2, -0.5, 0, 0.5, 3], shape: [5])
        #expect(ReLU()(x).values == [0, 0, 0, 0.5, 3])
        expectAllClose(LeakyReLU(0.1)(x).values, [-0.2, -0.05, 0, 0.5, 3])
        expectAllClose(LeakyReLU()(x).values, [-0.02, -0.005, 0, 0.5, 3])
        expectAllClose(Tanh()(x).values, x.values.map { Foundation.tanh($0) })
        expectAllClose(Sigmoid()(x).values, x.values.map { 1 / (1 + Foundation.exp(-$0)) })
        #expect(Identity()(x) === x)
    }

    @Test func poolingValues() {
        let x = Tensor((0..<16).map(Float.init), shape: [1, 1, 4, 4])
        #expect(MaxPool2d(2)(x).values == [5, 7, 13, 15])
        expectAllClose(AvgPool2d(2)(x).values, [2.5, 4.5, 10.5, 12.5])
        expectAllClose(GlobalAvgPool()(x).values, [7.5])
        let s = Tensor([1, 5, 2, 0, 3, 3], shape: [1, 1, 6])
        #expect(MaxPool1d(2)(s).values == [5, 2, 3])
        expectAllClose(AvgPool1d(3)(s).values, [8.0 / 3, 2])
    }

    // MARK: Initialisation

    /// Min, max, mean and standard deviation of `values` against U(−bound, bound).
    func expectUniform(_ values: [Float], bound: Float, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let n = Double(values.count)
        let mn = values.min()!, mx = values.max()!
        let mean = values.reduce(0.0) { $0 + Double($1) } / n
        let std = (values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n).squareRoot()
        #expect(mn >= -bound && mx <= bound, "\(label): values [\(mn), \(mx)] outside ±\(bound)", sourceLocation: sourceLocation)
        // Each extreme misses the outer 10/n of the range with probability e⁻¹⁰.
        let reach = 1 - 20 / Float(n)
        #expect(mn < -reach * bound && mx > reach * bound, "\(label): extremes [\(mn), \(mx)] do not reach ±\(bound)",
                sourceLocation: sourceLocation)
        let expectedStd = Double(bound) / 3.0.squareRoot()
        #expect(abs(std / expectedStd - 1) < 0.02, "\(label): std \(std), expected \(expectedStd)", sourceLocation: sourceLocation)
        #expect(abs(mean) < 0.03 * Double(bound), "\(label): mean \(mean)", sourceLocation: sourceLocation)
    }

    /// PyTorch's default: weights and biases U(±1/√fan_in); fan_in = in (Linear),
    /// in/groups·k (convolutions), weight.shape[1]·k = out/groups·k (transposed convolutions).
    @Test func defaultInitialisation() {
        let linear = Linear(400, 300)
        expectUniform(linear.weight.values, bound: 1 / 20, "Linear weight")
        let conv = Conv2d(64, 64, kernelSize: 3, groups: 4)            // fan_in 16·9 = 144
        expectUniform(conv.weight.values, bound: 1 / 12, "Conv2d weight")
        let convT = ConvTranspose2d(64, 32, kernelSize: 3, groups: 2)   // weight [64, 16, 3, 3], fan_in 144
        expectUniform(convT.weight.values, bound: 1 / 12, "ConvTranspose2d weight")
        let conv1 = Conv1d(50, 100, kernelSize: 2)                       // fan_in 100
        expectUniform(conv1.weight.values, bound: 0.1, "Conv1d weight")
        let convT1 = ConvTranspose1d(100, 25, kernelSize: 4)             // weight [100, 25, 4], fan_in 100
        expectUniform(convT1.weight.values, bound: 0.1, "ConvTranspose1d weight")
        // Biases: too few values for the statistics, but the same bound.
        for (label, b, bound) in [("Linear", linear.bias!, Float(1) / 20), ("Conv2d", conv.bias!, 1 / 12),
                                  ("ConvTranspose2d", convT.bias!, 1 / 12), ("ConvTranspose1d", convT1.bias!, 0.1)] {
            #expect(b.values.allSatisfy { abs($0) <= bound }, "\(label) bias outside ±\(bound)")
            #expect(b.values.contains { abs($0) > bound / 2 }, "\(label) bias much narrower than ±\(bound)")
        }
        #expect([linear.weight, conv.weight, convT.weight, linear.bias!].allSatisfy { $0.requiresGrad && $0.isLeaf })
    }

    /// The transposed convolution's bound follows PyTorch (out/groups·k), not in·k: with
    /// in = 1 and out = 64, in·k would give ±1/2, PyTorch gives ±1/√(64·4) = ±1/16.
    @Test func convTransposeFanInFromWeightShape() {
        let c = ConvTranspose2d(1, 64, kernelSize: 2)
        #expect(c.weight.shape == [1, 64, 2, 2])
        let m = c.weight.values.map(abs).max()!
        #expect(m <= 1 / 16 && m > 1 / 20)
        let wide = ConvTranspose2d(256, 1, kernelSize: 2)               // bound 1/√4 = 0.5
        let mw = wide.weight.values.map(abs).max()!
        #expect(mw <= 0.5 && mw > 0.45)
    }

    /// Kaiming normal: std √(2/fan_in).
    @Test func kaimingNormal() {
        let t = Initialization.kaimingNormal([200, 100], fanIn: 50)
        let v = t.values, n = Float(v.count)
        let mean = v.reduce(0, +) / n
        let std = (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n).squareRoot()
        #expect(abs(std / 0.2 - 1) < 0.02 && abs(mean) < 0.01 && t.requiresGrad)
    }

    /// GlobalRandom.seed makes initialisation repeatable; another seed gives other values.
    @Test func seedMakesInitialisationRepeatable() {
        let make = { () -> [Float] in
            let m = Sequential(Conv2d(2, 3, kernelSize: 3), Linear(4, 5), ConvTranspose1d(2, 2, kernelSize: 2))
            return m.parameters().flatMap(\.values)
        }
        let (a, b) = twiceWithSeed(2024, make)
        #expect(a == b)
        let (c, _) = twiceWithSeed(2025, make)
        #expect(a != c)
        // And the numbers are the global generator's: Linear's weight is uniform(±1/√in) drawn first.
        let (w, _) = twiceWithSeed(99) { Linear(4, 3).weight.values }
        var g = SeededGenerator(seed: 99)
        #expect(w == Tensor.uniform([3, 4], low: -0.5, high: 0.5, generator: &g).values)
        // withSeed alone starts the task's own sequence from its seed.
        let viaWithSeed = GlobalRandom.withSeed(99) { Linear(4, 3).weight.values }
        #expect(viaWithSeed == w)
    }

    /// The same with the process-wide sequence (what a training script calls).
    @Test func processWideSeedMakesInitialisationRepeatable() {
        let (a, b) = twiceWithProcessWideSeed(7) { Conv2d(2, 2, kernelSize: 3).weight.values }
        #expect(a == b)
        var g = SeededGenerator(seed: 7)
        let bound = 1 / Float(18).squareRoot()
        let expected = Tensor.uniform([2, 2, 3, 3], low: -bound, high: bound, generator: &g).values
        #expect(a == expected)
    }

    // MARK: Sequential fusion

    /// Output, input gradient and every parameter gradient of one run.
    struct Run: Equatable {
        var output: [Float], shape: [Int], opName: String
        var gradients: [[Float]]
        var state: [[Float]]
    }

    /// Runs `f` on a fresh copy of `x`, back-propagates Σ f(x)⊙W with fixed W, and collects the
    /// gradients of `x` and of `module`'s parameters (cleared afterwards), plus its buffers.
    static func run(_ module: Module, _ x: Tensor, _ f: (Tensor) -> Tensor) -> Run {
        let xs = NNData.leaf(x)
        let y = f(xs)
        let opName = y.opName
        (y * NNData.normal(y.shape, seed: 77)).sum().backward()
        let grads = [xs.grad?.values ?? []] + module.parameters().map { $0.grad?.values ?? [] }
        module.zeroGrad()
        return Run(output: y.values, shape: y.shape, opName: opName, gradients: grads,
                   state: module.namedBuffers().map { $0.1.tensor.values } + module.namedCounters().map { [Float($0.1.value)] })
    }

    static func expectSame(_ fused: Run, _ manual: Run, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(fused.shape == manual.shape, "\(label): shape", sourceLocation: sourceLocation)
        expectAllClose(fused.output, manual.output, rtol: 1e-5, atol: 1e-5, "\(label): output", sourceLocation: sourceLocation)
        #expect(fused.gradients.count == manual.gradients.count, sourceLocation: sourceLocation)
        for (i, (a, b)) in zip(fused.gradients, manual.gradients).enumerated() {
            #expect(!b.isEmpty, "\(label): gradient \(i) missing", sourceLocation: sourceLocation)
            expectAllClose(a, b, rtol: 1e-4, atol: 1e-4, "\(label): gradient \(i) (0 = input)", sourceLocation: sourceLocation)
        }
        #expect(fused.state.count == manual.state.count, sourceLocation: sourceLocation)
        for (i, (a, b)) in zip(fused.state, manual.state).enumerated() {
            expectAllClose(a, b, rtol: 1e-5, atol: 1e-6, "\(label): state \(i)", sourceLocation: sourceLocation)
        }
    }

    /// (label, first layer, activation layer, input shape, op name of the fused output on oneDNN).
    static func fusionCases() -> [(String, Module, Module, [Int], String?)] {
        [
            ("Conv2d+ReLU", Conv2d(3, 4, kernelSize: 3, padding: 1), ReLU(), [2, 3, 5, 5], "conv"),
            ("Conv2d+LeakyReLU", Conv2d(3, 4, kernelSize: 3, stride: 2), LeakyReLU(0.2), [2, 3, 7, 7], "conv"),
            ("Conv2d+Tanh", Conv2d(4, 4, kernelSize: 3, padding: 1, groups: 2), Tanh(), [2, 4, 5, 5], "conv"),
            ("Conv1d+ReLU", Conv1d(2, 3, kernelSize: 3), ReLU(), [2, 2, 9], "conv"),
            ("ConvTranspose2d+ReLU", ConvTranspose2d(3, 2, kernelSize: 4, stride: 2, padding: 1), ReLU(), [2, 3, 3, 3], nil),
            ("ConvTranspose1d+Tanh", ConvTranspose1d(3, 2, kernelSize: 3, stride: 2), Tanh(), [2, 3, 4], nil),
            ("Conv2d+LeakyReLU(negative slope, not fused)", Conv2d(2, 2, kernelSize: 3), LeakyReLU(-0.5), [1, 2, 5, 5], "leakyRelu"),
            ("BatchNorm2d+ReLU", BatchNorm2d(3), ReLU(), [2, 3, 4, 4], "batchNorm"),
            ("BatchNorm1d+ReLU", BatchNorm1d(3), ReLU(), [4, 3, 5], "batchNorm"),
        ]
    }

    /// Sequential(layer, activation) gives the same output, gradients (input and parameters)
    /// and BatchNorm state as calling the two layers one after the other, on both backends, in
    /// training and evaluation mode; on oneDNN the output comes from the fused kernel.
    @Test(arguments: KernelBackend.allCases, [true, false])
    func fusionMatchesLayerByLayer(backend: KernelBackend, training: Bool) {
        for (label, layer, activation, shape, fusedOp) in Self.fusionCases() {
            let seq = Sequential(layer, activation)
            seq.train(training)
            if let bn = layer as? BatchNorm {
                // Non-trivial affine parameters and running statistics.
                bn.weight.assign(NNData.normal(bn.weight.shape, seed: 31, std: 0.5) + 1)
                bn.bias.assign(NNData.normal(bn.bias.shape, seed: 32, std: 0.5))
                bn.runningMean.tensor = NNData.normal(bn.weight.shape, seed: 33, std: 0.2)
                bn.runningVar.tensor = NNData.normal(bn.weight.shape, seed: 34, std: 0.1) + 1
            }
            let initialState = seq.namedBuffers().map { $0.1.tensor.copy() }
            let x = NNData.normal(shape, seed: 8)
            let (fused, manual) = Engine.withBackend(backend) { () -> (Run, Run) in
                let fused = Self.run(seq, x) { seq($0) }
                // Reset the state the fused run changed, then run the layers one by one.
                for ((_, b), t) in zip(seq.namedBuffers(), initialState) { b.tensor = t.copy() }
                for (_, c) in seq.namedCounters() { c.value = 0 }
                let manual = Self.run(seq, x) { activation(layer($0)) }
                return (fused, manual)
            }
            let what = "\(label) [\(backend), \(training ? "train" : "eval")]"
            Self.expectSame(fused, manual, what)
            if backend == .onednn, let fusedOp {
                #expect(fused.opName == fusedOp, "\(what): the Sequential output came from '\(fused.opName)'")
            }
        }
    }

    /// Fusion looks at adjacent pairs only and continues after a fused pair.
    @Test func fusionInLongerChains() {
        let seq = Sequential(Conv2d(1, 2, kernelSize: 3, padding: 1), ReLU(), ReLU(), BatchNorm2d(2), ReLU(),
                             Conv2d(2, 2, kernelSize: 1), Tanh(), MaxPool2d(2), Flatten(), Linear(8, 2), ReLU())
        let x = NNData.normal([2, 1, 4, 4], seed: 9)
        let fused = Self.run(seq, x) { seq($0) }
        let bn = seq.layers[3] as! BatchNorm
        bn.runningMean.tensor = Tensor.zeros([2]); bn.runningVar.tensor = Tensor.ones([2]); bn.numBatchesTracked.value = 0
        let manual = Self.run(seq, x) { h in seq.layers.reduce(h) { $1($0) } }
        Self.expectSame(fused, manual, "long chain")
    }
}
