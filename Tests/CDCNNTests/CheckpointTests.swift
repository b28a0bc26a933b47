import CDCSafetensors
import CDCTensor
import Foundation
import Testing
@testable import CDCNN

/// A small model with parameters, optional bias, buffers and counters at several depths.
final class CheckpointNet: Module, @unchecked Sendable {
    let features = Sequential(Conv2d(1, 2, kernelSize: 3, padding: 1), BatchNorm2d(2), ReLU(),
                              Conv2d(2, 2, kernelSize: 1, bias: false))
    let norm = BatchNorm1d(2)
    let classifier = Linear(2, 3)

    override func forward(_ x: Tensor) -> Tensor {
        classifier(norm(features(x).globalAvgPool()))
    }
}

@Suite struct CheckpointTests {
    /// A unique temporary file, removed at the end of `body`.
    func withTemporaryFile<R>(_ body: (URL) throws -> R) throws -> R {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("cdcnn-checkpoint-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        return try body(url)
    }

    /// A model whose state differs from a fresh one everywhere: trained BatchNorm statistics,
    /// counters, and parameters.
    func trainedModel() -> CheckpointNet {
        let m = CheckpointNet()
        let x = NNData.normal([4, 1, 4, 4], seed: 21)
        for _ in 0..<3 { _ = m(x) }
        for p in m.parameters() { p.assign(p + 0.25) }
        return m
    }

    /// Every value of the model's state, by name.
    func snapshot(_ m: Module) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (n, t) in m.namedParameters() { out[n] = t.values }
        for (n, b) in m.namedBuffers() { out[n] = b.tensor.values }
        for (n, c) in m.namedCounters() { out[n] = [Float(c.value)] }
        return out
    }

    static let expectedNames: Set<String> = [
        "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
        "features.3.weight",
        "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked",
        "classifier.weight", "classifier.bias",
    ]

    // MARK: Round trip

    @Test func saveLoadRoundTrip() throws {
        let source = trainedModel()
        #expect(source.norm.numBatchesTracked.value == 3)
        try withTemporaryFile { url in
            try Checkpoint.save(source, to: url, metadata: ["epoch": "7"])
            let target = CheckpointNet()
            #expect(snapshot(target) != snapshot(source))
            let weightObject = target.classifier.weight
            let metadata = try Checkpoint.load(into: target, from: url)
            #expect(metadata["epoch"] == "7" && metadata["format"] == "pt")
            #expect(snapshot(target) == snapshot(source))
            #expect(target.norm.numBatchesTracked.value == 3 && target.features.namedCounters()[0].1.value == 3)
            // Loaded in place: optimizers holding the parameter objects see the new values.
            #expect(target.classifier.weight === weightObject)
            // The loaded model computes the same thing.
            source.eval(); target.eval()
            let x = NNData.normal([2, 1, 4, 4], seed: 22)
            #expect(source(x).values == target(x).values)
        }
    }

    /// The file holds exactly the module's state names: float32 parameters and buffers with
    /// their shapes, and int64 scalar counters (PyTorch's `num_batches_tracked`).
    @Test func fileNamesAndTypes() throws {
        let m = trainedModel()
        let moduleNames = Set(m.namedParameters().map(\.0) + m.namedBuffers().map(\.0) + m.namedCounters().map(\.0))
        #expect(moduleNames == Self.expectedNames)
        try withTemporaryFile { url in
            try Checkpoint.save(m, to: url)
            let file = try SafetensorsFile.read(from: url)
            #expect(Set(file.tensors.keys) == moduleNames)
            for (name, t) in m.namedParameters() {
                #expect(file.tensors[name]?.dtype == .f32 && file.tensors[name]?.shape == t.shape, "\(name)")
                #expect(try file.tensors[name]?.floats() == t.values, "\(name)")
            }
            for (name, b) in m.namedBuffers() {
                #expect(file.tensors[name]?.dtype == .f32 && file.tensors[name]?.shape == b.tensor.shape, "\(name)")
            }
            let counter = try #require(file.tensors["norm.num_batches_tracked"])
            #expect(counter.dtype == .i64 && counter.shape == [])
            #expect(counter.data == [3, 0, 0, 0, 0, 0, 0, 0])
            #expect(file.metadata == ["format": "pt"])
        }
        #expect(Set(Checkpoint.stateDict(m).keys) == Self.expectedNames)
    }

    /// Counters keep their exact integer value, also beyond float32's 2²⁴ (a long training run's
    /// `num_batches_tracked`).
    @Test func largeCounterRoundTrip() throws {
        let source = CheckpointNet()
        source.norm.numBatchesTracked.value = (1 << 24) + 1
        source.features.namedCounters()[0].1.value = 123_456_789
        let target = CheckpointNet()
        try Checkpoint.load(Checkpoint.stateDict(source), into: target)
        #expect(target.norm.numBatchesTracked.value == (1 << 24) + 1)
        #expect(target.features.namedCounters()[0].1.value == 123_456_789)
    }

    /// PyTorch writes int64 counters; an int32 counter is accepted as well.
    @Test func int32CounterAccepted() throws {
        var state = Checkpoint.stateDict(trainedModel())
        var v = Int32(42).littleEndian
        state["norm.num_batches_tracked"] = SafetensorsTensor(dtype: .i32, shape: [], data: withUnsafeBytes(of: &v) { Array($0) })
        let target = CheckpointNet()
        try Checkpoint.load(state, into: target)
        #expect(target.norm.numBatchesTracked.value == 42)
    }

    // MARK: Errors

    /// Expects `load` to throw `expected`, whose description names `tensor`, and to leave the
    /// target model exactly as it was.
    func expectLoadFails(_ state: [String: SafetensorsTensor], strict: Bool = true, _ expected: CheckpointError,
                         naming tensor: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let target = CheckpointNet()
        let before = snapshot(target)
        do {
            try Checkpoint.load(state, into: target, strict: strict)
            Issue.record("load succeeded, expected \(expected)", sourceLocation: sourceLocation)
        } catch let error as CheckpointError {
            #expect(error == expected, sourceLocation: sourceLocation)
            #expect(error.description.contains(tensor), "message '\(error)' does not name '\(tensor)'",
                    sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
        }
        #expect(snapshot(target) == before, "a failed load changed the model", sourceLocation: sourceLocation)
    }

    @Test func missingTensor() {
        var state = Checkpoint.stateDict(trainedModel())
        state["norm.running_var"] = nil
        expectLoadFails(state, .missing(["norm.running_var"]), naming: "norm.running_var")
        state["features.0.bias"] = nil
        expectLoadFails(state, .missing(["features.0.bias", "norm.running_var"]), naming: "features.0.bias")
    }

    @Test func unexpectedTensor() {
        var state = Checkpoint.stateDict(trainedModel())
        state["classifier.extra"] = SafetensorsTensor(float32: [1, 2], shape: [2])
        expectLoadFails(state, .unexpected(["classifier.extra"]), naming: "classifier.extra")
    }

    @Test func shapeMismatch() {
        var state = Checkpoint.stateDict(trainedModel())
        state["classifier.weight"] = SafetensorsTensor(float32: [Float](repeating: 0, count: 6), shape: [2, 3])
        expectLoadFails(state, .shapeMismatch(name: "classifier.weight", expected: [3, 2], found: [2, 3]),
                        naming: "classifier.weight")
        // Same element count, other rank.
        var flat = Checkpoint.stateDict(trainedModel())
        flat["features.3.weight"] = SafetensorsTensor(float32: [Float](repeating: 0, count: 4), shape: [4])
        expectLoadFails(flat, .shapeMismatch(name: "features.3.weight", expected: [2, 2, 1, 1], found: [4]),
                        naming: "features.3.weight")
        // A buffer, and a counter that is not a scalar.
        var buffer = Checkpoint.stateDict(trainedModel())
        buffer["norm.running_mean"] = SafetensorsTensor(float32: [0, 0, 0], shape: [3])
        expectLoadFails(buffer, .shapeMismatch(name: "norm.running_mean", expected: [2], found: [3]), naming: "norm.running_mean")
        var counter = Checkpoint.stateDict(trainedModel())
        counter["norm.num_batches_tracked"] = SafetensorsTensor(dtype: .i64, shape: [2], data: [UInt8](repeating: 0, count: 16))
        expectLoadFails(counter, .shapeMismatch(name: "norm.num_batches_tracked", expected: [], found: [2]),
                        naming: "norm.num_batches_tracked")
    }

    /// F16, BF16 and F64 tensors load, widened to Float (an fp16 upload, a `.half()` file).
    @Test func lowerAndHigherPrecisionFloatsLoad() throws {
        var state = Checkpoint.stateDict(trainedModel())
        state["classifier.weight"] = SafetensorsTensor(float16: [1, -0.5, 0.1, 2, 3, -4], shape: [3, 2])
        var running = [UInt8]()
        for v in [0.25, 8.0] { running += withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { Array($0) } }
        state["features.1.running_var"] = SafetensorsTensor(dtype: .f64, shape: [2], data: running)
        let model = trainedModel()
        try Checkpoint.load(state, into: model)
        let loaded = Checkpoint.stateDict(model)
        #expect(try loaded["classifier.weight"]!.floats() == [1, -0.5, 0.0999755859375, 2, 3, -4])
        #expect(try loaded["features.1.running_var"]!.floats() == [0.25, 8])
    }

    @Test func wrongDType() {
        let state = Checkpoint.stateDict(trainedModel())
        var i32 = state
        i32["features.0.weight"] = SafetensorsTensor(dtype: .i32, shape: [2, 1, 3, 3], data: [UInt8](repeating: 0, count: 72))
        expectLoadFails(i32, .wrongDType(name: "features.0.weight", expected: "F32", found: "I32"), naming: "features.0.weight")
        var buffer = state
        buffer["features.1.running_var"] = SafetensorsTensor(dtype: .i16, shape: [2], data: [UInt8](repeating: 0, count: 4))
        expectLoadFails(buffer, .wrongDType(name: "features.1.running_var", expected: "F32", found: "I16"),
                        naming: "features.1.running_var")
        var counter = state
        counter["norm.num_batches_tracked"] = SafetensorsTensor(float32: [3], shape: [])
        expectLoadFails(counter, .wrongDType(name: "norm.num_batches_tracked", expected: "I64", found: "F32"),
                        naming: "norm.num_batches_tracked")
    }

    /// All or nothing: when the problem is found after other tensors were validated (the last
    /// buffer, or a counter, which are checked after every parameter), nothing is assigned.
    @Test func failedLoadChangesNothing() {
        var state = Checkpoint.stateDict(trainedModel())
        state["norm.running_var"] = SafetensorsTensor(float32: [1, 1, 1, 1], shape: [4])
        expectLoadFails(state, .shapeMismatch(name: "norm.running_var", expected: [2], found: [4]), naming: "norm.running_var")
        var counter = Checkpoint.stateDict(trainedModel())
        counter["norm.num_batches_tracked"] = SafetensorsTensor(dtype: .bool, shape: [], data: [1])
        expectLoadFails(counter, .wrongDType(name: "norm.num_batches_tracked", expected: "I64", found: "BOOL"),
                        naming: "norm.num_batches_tracked")
        // Non-strict loads validate everything too.
        var loose = Checkpoint.stateDict(trainedModel())
        loose["extra"] = SafetensorsTensor(float32: [1], shape: [1])
        loose["classifier.bias"] = SafetensorsTensor(float32: [1, 2], shape: [2])
        expectLoadFails(loose, strict: false, .shapeMismatch(name: "classifier.bias", expected: [3], found: [2]),
                        naming: "classifier.bias")
    }

    /// Non-strict: extra tensors are ignored, missing ones keep the model's values, the rest load.
    @Test func nonStrictLoad() throws {
        let source = trainedModel()
        var state = Checkpoint.stateDict(source)
        state["head.weight"] = SafetensorsTensor(float32: [1, 2, 3], shape: [3])
        state["step"] = SafetensorsTensor(dtype: .i64, shape: [], data: [UInt8](repeating: 0, count: 8))
        let target = CheckpointNet()
        try Checkpoint.load(state, into: target, strict: false)
        #expect(snapshot(target) == snapshot(source))

        state["classifier.bias"] = nil
        let partial = CheckpointNet()
        let biasBefore = partial.classifier.bias!.values
        try Checkpoint.load(state, into: partial, strict: false)
        #expect(partial.classifier.bias!.values == biasBefore)
        #expect(partial.classifier.weight.values == source.classifier.weight.values)
    }

    // MARK: Broken files

    /// Expects loading the file at `url` to fail with a safetensors error whose message contains
    /// `fragment`, leaving the model unchanged.
    func expectFileFails(_ url: URL, _ check: (SafetensorsError) -> Bool, mentioning fragment: String?,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        let target = CheckpointNet()
        let before = snapshot(target)
        do {
            try Checkpoint.load(into: target, from: url)
            Issue.record("load succeeded", sourceLocation: sourceLocation)
        } catch let error as SafetensorsError {
            #expect(check(error), "unexpected error \(error)", sourceLocation: sourceLocation)
            if let fragment {
                #expect(error.description.contains(fragment), "message '\(error)' does not mention '\(fragment)'",
                        sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("expected the safetensors error to surface, got \(type(of: error)): \(error)",
                         sourceLocation: sourceLocation)
        }
        #expect(snapshot(target) == before, "a failed load changed the model", sourceLocation: sourceLocation)
    }

    /// A file cut short inside the data: the error names the tensor whose bytes are missing
    /// (tensors are stored sorted by name, so the last one, `norm.weight`).
    @Test func truncatedFile() throws {
        let last = Self.expectedNames.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.last!
        #expect(last == "norm.weight")
        try withTemporaryFile { url in
            try Checkpoint.save(trainedModel(), to: url)
            var bytes = try Data(contentsOf: url)
            bytes.removeLast(3)
            try bytes.write(to: url)
            expectFileFails(url, { if case .offsetsOutOfRange(let t, _, _, _) = $0 { t == last } else { false } },
                            mentioning: last)
            // Cut inside the header.
            try bytes.prefix(40).write(to: url)
            expectFileFails(url, { if case .truncated = $0 { true } else { false } }, mentioning: "truncated")
            try Data([1, 2, 3]).write(to: url)
            expectFileFails(url, { if case .fileTooShort = $0 { true } else { false } }, mentioning: nil)
        }
    }

    /// A header with a bad entry names that tensor; a header that is not JSON says so.
    @Test func badHeader() throws {
        func file(_ header: String, data: Int) -> Data {
            var h = Array(header.utf8)
            while h.count % 8 != 0 { h.append(UInt8(ascii: " ")) }
            var out = Data()
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: h)
            out.append(contentsOf: [UInt8](repeating: 0, count: data))
            return out
        }
        try withTemporaryFile { url in
            try file(#"{"classifier.bias":{"dtype":"F17","shape":[3],"data_offsets":[0,12]}}"#, data: 12).write(to: url)
            expectFileFails(url, { if case .unknownDType(let t, "F17") = $0 { t == "classifier.bias" } else { false } },
                            mentioning: "classifier.bias")
            try file(#"{"classifier.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[0,12]}}"#, data: 12).write(to: url)
            expectFileFails(url, { if case .sizeMismatch(let t, _, _, _, _) = $0 { t == "classifier.weight" } else { false } },
                            mentioning: "classifier.weight")
            try file(#"{"classifier.weight": {"dtype": "F32", "#, data: 0).write(to: url)
            expectFileFails(url, { if case .invalidHeader = $0 { true } else { false } }, mentioning: "header")
        }
        // A missing file surfaces as an I/O error naming the path.
        let nowhere = FileManager.default.temporaryDirectory.appendingPathComponent("cdcnn-no-such-\(UUID().uuidString)")
        expectFileFails(nowhere, { if case .io = $0 { true } else { false } }, mentioning: nowhere.lastPathComponent)
    }

    /// A Sequential's state names are the keys of PyTorch's `nn.Sequential.state_dict()`.
    @Test func stateDictNamesMatchPyTorchConvention() {
        let s = Sequential(Conv2d(1, 2, kernelSize: 3), BatchNorm2d(2), ReLU(), Flatten(), Linear(2, 2))
        #expect(Set(Checkpoint.stateDict(s).keys) == [
            "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
            "4.weight", "4.bias",
        ])
    }

    /// A model with two arrays of modules must survive a round trip (its names must not collide).
    @Test func arrayModulesRoundTrip() throws {
        let source = WithArrays()
        for p in source.parameters() { p.assign(p + 1) }
        let state = Checkpoint.stateDict(source)
        #expect(state.count == source.namedParameters().count + source.namedBuffers().count + source.namedCounters().count)
        let target = WithArrays()
        try Checkpoint.load(state, into: target)
        #expect(target.parameters().map(\.values) == source.parameters().map(\.values))
    }
}
