import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation
import Testing
@testable import CDCModels

/// Forward outputs of the reference models against PyTorch, from the same weights
/// (fixtures made by `scripts/make_fixtures.py`).
@Suite struct PyTorchFixtureTests {
    static let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    func io(_ name: String) throws -> [String: Tensor] {
        let f = try SafetensorsFile.read(from: Self.dir.appendingPathComponent("\(name).io.safetensors"))
        return try f.tensors.mapValues { Tensor(try $0.floats(), shape: $0.shape) }
    }

    func load(_ model: Module, _ name: String) throws {
        try Checkpoint.load(into: model, from: Self.dir.appendingPathComponent("\(name).weights.safetensors"))
    }

    func maxError(_ a: Tensor, _ b: Tensor) -> Float {
        #expect(a.shape == b.shape)
        return zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0
    }

    @Test(arguments: KernelBackend.allCases, [("cdc-ae", 4), ("cdc-ae-m2", 2)])
    func autoencoder(backend: KernelBackend, fixture: (String, Int)) throws {
        let ae = CDCAutoencoder.image(mask: fixture.1)
        try load(ae, fixture.0)
        ae.eval()
        let t = try io(fixture.0)
        try Engine.withBackend(backend) {
            let (symbols, shape) = ae.encode(t["input"]!)
            let latent = Autograd.noGrad { ae.encoder(t["input"]!) }
            #expect(maxError(latent, t["latent"]!) < 1e-5)
            #expect(shape == t["symbols"]!.shape)
            #expect(symbols.map(Float.init) == t["symbols"]!.values)
            let out = Autograd.noGrad { ae(t["input"]!) }
            #expect(maxError(out, t["output_eval"]!) < 1e-4)
            let restored = ae.decode(symbols, shape: shape)
            #expect(maxError(restored, t["restored"]!) < 1e-4)
            _ = try #require(Optional(0))
        }
    }

    @Test(arguments: KernelBackend.allCases)
    func autoencoder1D(backend: KernelBackend) throws {
        let ae = CDCAutoencoder.audio(mask: 4)
        try load(ae, "cdc-ae-1d")
        ae.eval()
        let t = try io("cdc-ae-1d")
        Engine.withBackend(backend) {
            let (symbols, _) = ae.encode(t["input"]!)
            #expect(symbols.map(Float.init) == t["symbols"]!.values)
            #expect(maxError(Autograd.noGrad { ae(t["input"]!) }, t["output_eval"]!) < 1e-4)
        }
    }

    @Test(arguments: KernelBackend.allCases)
    func elementaryClassifierAndGradient(backend: KernelBackend) throws {
        let ec = ElementaryClassifier.image()
        try load(ec, "cdc-ec")
        let t = try io("cdc-ec")
        Engine.withBackend(backend) {
            ec.eval()
            let logits = ec(t["input"]!)
            #expect(maxError(logits, t["output_eval"]!) < 1e-4)
            let loss = Tensor.crossEntropy(logits, labels: [3, 7])
            #expect(abs(loss.item - t["loss"]!.item) < 1e-5)
            loss.backward()
            let fc = ec.namedParameters().first { $0.0 == "9.weight" }!.1
            #expect(maxError(fc.grad!, t["grad_fc_weight"]!) < 1e-5)
        }
    }

    @Test(arguments: KernelBackend.allCases)
    func elementaryClassifier1D(backend: KernelBackend) throws {
        let ec = ElementaryClassifier.audio()
        try load(ec, "cdc-ec-1d")
        ec.eval()
        let t = try io("cdc-ec-1d")
        Engine.withBackend(backend) {
            #expect(maxError(Autograd.noGrad { ec(t["input"]!) }, t["output_eval"]!) < 1e-4)
        }
    }

    @Test(arguments: KernelBackend.allCases)
    func resnext11EvalAndTrain(backend: KernelBackend) throws {
        let t = try io("resnext-11")
        let net = ResNeXt.resnext11()
        try load(net, "resnext-11")
        let evalOut = Engine.withBackend(backend) { Autograd.noGrad { net.eval()(t["input"]!) } }
        #expect(maxError(evalOut, t["output_eval"]!) < 1e-3)
        let trainOut = Engine.withBackend(backend) { Autograd.noGrad { net.train()(t["input_train"]!) } }
        #expect(maxError(trainOut, t["output_train"]!) < 1e-3)
        let stem = try #require(net.stem.layers[1] as? BatchNorm2d)
        #expect(maxError(stem.runningMean.tensor, t["running_mean_after"]!) < 1e-5)
        #expect(maxError(stem.runningVar.tensor, t["running_var_after"]!) < 1e-5)
        #expect(stem.numBatchesTracked.value == 1)
    }

    /// resnext-29 is too large to commit as weights: both sides fill it from the formula of
    /// `formula_state` in `scripts/make_fixtures.py`.
    static func fillFormulaWeights(_ model: Module) throws {
        let state = Checkpoint.stateDict(model)
        var filled: [String: SafetensorsTensor] = [:]
        for (t, name) in state.keys.sorted().enumerated() {
            let ref = state[name]!
            if ref.dtype == .i64 { filled[name] = ref; continue }
            let n = ref.shape.reduce(1, *)
            let isBNWeight = name.hasSuffix(".weight") && state[name.replacingOccurrences(of: ".weight", with: ".running_mean")] != nil
            let values: [Float] = (0..<n).map { j in
                let s = sin(0.37 * Double(j) + 1.3 * Double(t))
                if ref.shape.count >= 2 { return Float(s / (Double(n) / Double(ref.shape[0])).squareRoot()) }
                if name.hasSuffix("running_var") { return Float(1 + 0.25 * (1 + s)) }
                if isBNWeight { return Float(1 + 0.1 * s) }
                return Float(0.1 * s)
            }
            filled[name] = SafetensorsTensor(float32: values, shape: ref.shape)
        }
        try Checkpoint.load(filled, into: model)
    }

    @Test func resnext29WithFormulaWeights() throws {
        let t = try io("resnext-29")
        let net = ResNeXt.resnext29()
        try Self.fillFormulaWeights(net)
        let evalOut = Autograd.noGrad { net.eval()(t["input"]!) }
        #expect(maxError(evalOut, t["output_eval"]!) < 2e-3)
        let trainOut = Autograd.noGrad { net.train()(t["input"]!) }
        #expect(maxError(trainOut, t["output_train"]!) < 2e-3)
    }

    @Test func stateDictNamesAndShapesMatchPyTorch() throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent("state_dict_names.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: [String: [Any]]]
        for model in ReferenceModel.allCases {
            let expected = try #require(json[model.rawValue], "no names for \(model.rawValue)")
            let ours = Checkpoint.stateDict(model.make())
            #expect(Set(ours.keys) == Set(expected.keys), "names differ for \(model.rawValue)")
            for (name, entry) in expected {
                let shape = (entry[0] as! [Any]).map { ($0 as! NSNumber).intValue }
                #expect(ours[name]?.shape == shape, "\(model.rawValue) \(name)")
            }
        }
    }

    @Test func readsFileWrittenByPythonSafetensors() throws {
        let f = try SafetensorsFile.read(from: Self.dir.appendingPathComponent("python_mixed.safetensors"))
        #expect(try f.tensors["f32"]!.floats() == [-1, -0.5, 0, 0.5, 1, 1.5])
        #expect(f.tensors["f32"]!.shape == [2, 3])
        #expect(try f.tensors["f16"]!.floats() == [1, -2, 65504, 5.9604645e-8])
        #expect(try f.tensors["bf16"]!.floats() == [1, -3.5])
        #expect(try f.tensors["i64"]!.floats() == [-1, 0, Float(1 << 40)])
        #expect(try f.tensors["u8"]!.floats() == [0, 1, 2, 254, 255])
        #expect(f.tensors["scalar"]!.shape == [])
        #expect(try f.tensors["scalar"]!.floats() == [3.25])
        #expect(f.metadata["source"] == "make_fixtures.py")
    }
}
