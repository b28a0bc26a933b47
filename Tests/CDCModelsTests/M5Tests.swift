import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation
import Testing
@testable import CDCModels

/// `m5`, the audio cloud classifier: size, shapes, PyTorch state names, and the forward pass
/// against PyTorch (fixture `m5.io.safetensors`, formula weights).
@Suite struct M5Tests {
    /// PyTorch's `m5().state_dict().keys()`, printed by (from the repository root):
    /// `/work/torch-venv/bin/python -c "import sys; sys.path.insert(0, '../shared/bench'); import torch_reference as r; print(list(r.m5().state_dict().keys()))"`
    static let pytorchNames = [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "4.weight", "5.weight", "5.bias", "5.running_mean", "5.running_var", "5.num_batches_tracked",
        "8.weight", "9.weight", "9.bias", "9.running_mean", "9.running_var", "9.num_batches_tracked",
        "12.weight", "13.weight", "13.bias", "13.running_mean", "13.running_var", "13.num_batches_tracked",
        "18.weight", "18.bias",
    ]

    @Test func parametersAndFlopsAsTheSpecCounts() {
        let s = ReferenceModel.m5.summary()
        #expect(s.parameters == 558_090)
        #expect(s.flopsPerSample == 139_077_632)
        #expect(ReferenceModel.m5.sampleShape() == [1, 8000])
        #expect(ReferenceModel(rawValue: "m5") == .m5)
    }

    @Test func outputShapeAndStageLengths() throws {
        let m = AudioClassifier.m5(classes: 7)
        m.eval()
        let x = Tensor.rand([3, 1, 8000], seed: 5)
        var convLengths: [Int] = [], poolLengths: [Int] = []
        var h = x
        Autograd.noGrad {
            for layer in m.layers {
                h = layer(h)
                if layer is Conv1d { convLengths.append(h.shape[2]) }
                if layer is MaxPool1d { poolLengths.append(h.shape[2]) }
            }
        }
        #expect(convLengths == [2000, 500, 125, 31])
        #expect(poolLengths == [500, 125, 31, 7])
        #expect(h.shape == [3, 7])
        // The fused path of Sequential gives the same shape.
        #expect(Autograd.noGrad { m(x) }.shape == [3, 7])
    }

    @Test func stateNamesAreExactlyPyTorchs() {
        let ours = Checkpoint.stateDict(AudioClassifier.m5())
        #expect(Set(ours.keys) == Set(Self.pytorchNames))
        #expect(ours.count == Self.pytorchNames.count)
        #expect(ours["0.weight"]?.shape == [128, 1, 80])
        #expect(ours["12.weight"]?.shape == [512, 256, 3])
        #expect(ours["18.weight"]?.shape == [10, 512])
        #expect(ours["0.bias"] == nil)
    }

    @Test(arguments: KernelBackend.allCases)
    func forwardMatchesPyTorch(backend: KernelBackend) throws {
        let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        let f = try SafetensorsFile.read(from: dir.appendingPathComponent("m5.io.safetensors"))
        let t = try f.tensors.mapValues { Tensor(try $0.floats(), shape: $0.shape) }
        let net = AudioClassifier.m5()
        try PyTorchFixtureTests.fillFormulaWeights(net)
        func maxError(_ a: Tensor, _ b: Tensor) -> Float {
            #expect(a.shape == b.shape)
            return zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity
        }
        let evalOut = Engine.withBackend(backend) { Autograd.noGrad { net.eval()(t["input"]!) } }
        #expect(maxError(evalOut, t["output_eval"]!) < 1e-3)
        let trainOut = Engine.withBackend(backend) { Autograd.noGrad { net.train()(t["input"]!) } }
        #expect(maxError(trainOut, t["output_train"]!) < 1e-3)
    }

    @Test func trainingStepLowersTheLossOnAFixedBatch() {
        GlobalRandom.seed(3)
        let net = AudioClassifier.m5()
        let trainer = ClassifierTrainer(model: net, learningRate: 0.05, momentum: 0.9)
        let x = Tensor.rand([8, 1, 1600], seed: 9) * 2 - 1
        let labels = [0, 1, 2, 3, 4, 5, 6, 7]
        let first = trainer.step(x, labels: labels).loss
        var last = first
        for _ in 0..<10 { last = trainer.step(x, labels: labels).loss }
        #expect(last.isFinite && last < first)
    }
}
