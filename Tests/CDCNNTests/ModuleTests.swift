import CDCTensor
import Testing
@testable import CDCNN

// MARK: - Modules under test

/// Every kind of child the reflection must find: plain, camelCase-named, optional (present and
/// absent), a nested Sequential, and a module-typed parameter-free child.
final class Composite: Module, @unchecked Sendable {
    let convIn = Conv2d(2, 3, kernelSize: 3, padding: 1)
    let bnMain = BatchNorm2d(3)
    let head: Linear? = Linear(3, 2)
    let absentHead: Linear? = nil
    let body = Sequential(Linear(3, 4), ReLU(), Sequential(Linear(4, 4, bias: false), Tanh()), Dropout(0.5))
    var extraScale: Tensor = Tensor.ones([1], requiresGrad: true)
    var noShift: Tensor? = nil
    let act = ReLU()

    override func forward(_ x: Tensor) -> Tensor {
        let h = bnMain(convIn(x)).relu().globalAvgPool()
        return body(head!(h).matmul(Tensor.ones([2, 3]))) * extraScale
    }
}

/// Arrays of modules as properties (PyTorch's ModuleList).
final class WithArrays: Module, @unchecked Sendable {
    let encoders: [Linear] = [Linear(2, 3), Linear(3, 3)]
    let decoders: [Module] = [Linear(3, 2), BatchNorm1d(2)]
}

@Suite struct ModuleTests {
    // MARK: Names

    @Test func snakeCase() {
        #expect(Module.snakeCase("runningMean") == "running_mean")
        #expect(Module.snakeCase("numBatchesTracked") == "num_batches_tracked")
        #expect(Module.snakeCase("weight") == "weight")
        #expect(Module.snakeCase("fc1") == "fc1")
        #expect(Module.snakeCase("convIn2") == "conv_in2")
    }

    /// Dotted snake_case names, depth first in declaration order; optional children and
    /// optional tensors appear only when present; Sequential children are "0", "1", ….
    @Test func namedParameters() {
        let m = Composite()
        #expect(m.namedParameters().map(\.0) == [
            "extra_scale",
            "conv_in.weight", "conv_in.bias",
            "bn_main.weight", "bn_main.bias",
            "head.weight", "head.bias",
            "body.0.weight", "body.0.bias",
            "body.2.0.weight",
        ])
        #expect(m.namedBuffers().map(\.0) == ["bn_main.running_mean", "bn_main.running_var"])
        #expect(m.namedCounters().map(\.0) == ["bn_main.num_batches_tracked"])
        #expect(m.children().map(\.0) == ["conv_in", "bn_main", "head", "body", "act"])
        #expect(m.body.children().map(\.0) == ["0", "1", "2", "3"])
    }

    /// The names are the module's own tensors (not copies).
    @Test func namedParametersAreTheTensors() {
        let m = Composite()
        let byName = Dictionary(uniqueKeysWithValues: m.namedParameters())
        #expect(byName["conv_in.weight"] === m.convIn.weight)
        #expect(byName["head.bias"] === m.head!.bias)
        #expect(byName["extra_scale"] === m.extraScale)
        #expect(Dictionary(uniqueKeysWithValues: m.namedBuffers())["bn_main.running_var"] === m.bnMain.runningVar)
        #expect(m.parameters().count == 10)
    }

    /// A plain Sequential is named like PyTorch's nn.Sequential: "0.weight", …; a prefix is
    /// prepended with a dot.
    @Test func sequentialNames() {
        let s = Sequential(Conv2d(1, 2, kernelSize: 3), BatchNorm2d(2), ReLU(), Flatten(), Linear(8, 3))
        #expect(s.namedParameters().map(\.0) == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"])
        #expect(s.namedBuffers(prefix: "net.").map(\.0) == ["net.1.running_mean", "net.1.running_var"])
        #expect(s.namedCounters().map(\.0) == ["1.num_batches_tracked"])
    }

    /// An array-of-modules property is named like PyTorch's `nn.ModuleList` attribute:
    /// `encoders.0.weight`, not `0.weight` (only Sequential's own children are bare indices).
    @Test func arrayPropertiesNamedLikeModuleList() {
        let m = WithArrays()
        #expect(m.namedParameters().map(\.0) == [
            "encoders.0.weight", "encoders.0.bias", "encoders.1.weight", "encoders.1.bias",
            "decoders.0.weight", "decoders.0.bias", "decoders.1.weight", "decoders.1.bias",
        ])
        #expect(m.namedBuffers().map(\.0) == ["decoders.1.running_mean", "decoders.1.running_var"])
    }

    /// Whatever the naming, two array properties must not produce the same names (a checkpoint
    /// keyed by name would silently drop one of the tensors).
    @Test func namesAreUnique() {
        let names = WithArrays().namedParameters().map(\.0)
        #expect(Set(names).count == names.count, "duplicate parameter names: \(names)")
    }

    // MARK: Modes

    @Test func trainEvalIsRecursive() {
        let m = Composite()
        func all(_ module: Module) -> [Module] { [module] + module.children().flatMap { all($0.1) } }
        let modules = all(m)
        #expect(modules.count == 12)   // self, conv, bn, head, body, 4 body children, inner 2, act
        #expect(modules.allSatisfy { $0.training })
        let returned = m.eval()
        #expect(returned === m)
        #expect(modules.allSatisfy { !$0.training })
        m.train()
        #expect(modules.allSatisfy { $0.training })
        m.train(false)
        #expect(modules.allSatisfy { !$0.training })
        m.body.train(true)
        #expect(m.body.layers.allSatisfy { $0.training } && !m.training && !m.convIn.training)
    }

    @Test func trainEvalReachesArrayChildren() {
        let m = WithArrays().eval()
        #expect(m.encoders.allSatisfy { !$0.training } && m.decoders.allSatisfy { !$0.training })
    }

    // MARK: Counting and gradients

    @Test func parameterCount() {
        #expect(Linear(3, 4).parameterCount == 16)
        #expect(Linear(3, 4, bias: false).parameterCount == 12)
        #expect(BatchNorm2d(3).parameterCount == 6)   // buffers are not parameters
        #expect(Conv2d(4, 6, kernelSize: 3, groups: 2).parameterCount == 6 * 2 * 9 + 6)
        #expect(ConvTranspose2d(4, 6, kernelSize: 2, groups: 2).parameterCount == 4 * 3 * 4 + 6)
        #expect(Conv1d(2, 3, kernelSize: 5).parameterCount == 3 * 2 * 5 + 3)
        #expect(ReLU().parameterCount == 0)
        // 2·3·9+3, 3+3, 3·2+2, 3·4+4, 4·4, 1
        #expect(Composite().parameterCount == 57 + 6 + 8 + 16 + 16 + 1)
    }

    @Test func zeroGradClearsEveryGradient() {
        let m = Composite()
        let x = NNData.normal([2, 2, 4, 4], seed: 5)
        m(x).sum().backward()
        let params = m.parameters()
        #expect(params.allSatisfy { $0.grad != nil }, "every parameter takes part in forward")
        m.zeroGrad()
        #expect(params.allSatisfy { $0.grad == nil })
    }

    // MARK: BatchNorm state

    @Test func batchNormBuffersAndCounter() {
        let bn = BatchNorm1d(2, momentum: 0.1)
        #expect(bn.weight.values == [1, 1] && bn.bias.values == [0, 0])
        #expect(bn.weight.requiresGrad && bn.bias.requiresGrad)
        #expect(bn.runningMean.tensor.values == [0, 0] && bn.runningVar.tensor.values == [1, 1])
        #expect(bn.numBatchesTracked.value == 0)

        // Channel 0: 1, 2, 3, 6 (mean 3, unbiased var 14/3); channel 1: 0, 0, 4, 4 (mean 2, var 16/3).
        let x = Tensor([1, 0, 2, 0, 3, 4, 6, 4], shape: [4, 2])
        let y = bn(x)
        #expect(bn.numBatchesTracked.value == 1)
        expectAllClose(bn.runningMean.tensor.values, [0.3, 0.2])
        expectAllClose(bn.runningVar.tensor.values, [0.9 + 0.1 * 14 / 3, 0.9 + 0.1 * 16 / 3])
        // Training output uses the biased batch variance.
        let v0: Float = 3.5, v1: Float = 4
        expectAllClose(y.values, [(1 - 3) / (v0 + 1e-5).squareRoot(), -2 / (v1 + 1e-5).squareRoot(),
                                  (2 - 3) / (v0 + 1e-5).squareRoot(), -2 / (v1 + 1e-5).squareRoot(),
                                  0, 2 / (v1 + 1e-5).squareRoot(),
                                  3 / (v0 + 1e-5).squareRoot(), 2 / (v1 + 1e-5).squareRoot()], rtol: 1e-4)
        _ = bn(x)
        #expect(bn.numBatchesTracked.value == 2)

        // Eval: running statistics used, nothing updated.
        bn.eval()
        let rm = bn.runningMean.tensor.values, rv = bn.runningVar.tensor.values
        let e = bn(x)
        #expect(bn.numBatchesTracked.value == 2)
        #expect(bn.runningMean.tensor.values == rm && bn.runningVar.tensor.values == rv)
        let xv = x.values
        expectAllClose(e.values, (0..<8).map { i in (xv[i] - rm[i % 2]) / (rv[i % 2] + 1e-5).squareRoot() }, rtol: 1e-4)
    }

    @Test func batchNormCounterInsideModel() {
        let m = Composite()
        let x = NNData.normal([2, 2, 4, 4], seed: 6)
        _ = m(x); _ = m(x)
        #expect(m.namedCounters().map { $0.1.value } == [2])
        m.eval(); _ = m(x)
        #expect(m.bnMain.numBatchesTracked.value == 2)
    }

    // MARK: Dropout

    @Test func dropoutIsIdentityInEval() {
        let d = Dropout(0.5).eval()
        let x = NNData.normal([4, 8], seed: 7)
        #expect(d(x).values == x.values)
        #expect(Dropout(0).train()(x).values == x.values)
    }

    /// Training mode: each element is 0 or x/(1−p); the mask comes from GlobalRandom, so the same
    /// seed gives the same mask and another seed a different one.
    @Test func dropoutSeededByGlobalRandom() {
        let p: Float = 0.25
        let d = Dropout(p)
        #expect(d.training)
        let x = Tensor((0..<256).map { Float($0 % 7) + 1 }, shape: [16, 16])
        let (a, b) = twiceWithSeed(123) { d(x).values }
        #expect(a == b, "the same seed must give the same dropout mask")
        let dropped = a.filter { $0 == 0 }.count
        #expect(dropped > 32 && dropped < 100, "about a quarter of 256 should be dropped, got \(dropped)")
        let xv = x.values
        for i in a.indices where a[i] != 0 {
            #expect(abs(a[i] - xv[i] / (1 - p)) < 1e-5)
        }
        // The mask is drawn from the global generator: one uniform per element, dropped below p.
        var g = SeededGenerator(seed: 123)
        let keep = xv.map { _ in g.nextUniform() >= p }
        #expect(a.map { $0 != 0 } == keep)
        let (c, _) = twiceWithSeed(124) { d(x).values }
        #expect(c != a, "another seed must give another mask")
        // Consecutive calls draw new masks.
        let (pair, _) = twiceWithSeed(123) { [d(x).values, d(x).values] }
        #expect(pair[0] == a && pair[1] != a)
    }

    /// Dropout's gradient flows through the kept elements only, scaled by 1/(1−p).
    @Test func dropoutGradient() {
        let d = Dropout(0.5)
        let x = Tensor([Float](repeating: 1, count: 64), shape: [64], requiresGrad: true)
        let y = d(x)
        y.sum().backward()
        #expect(x.grad!.values == y.values)
    }
}
