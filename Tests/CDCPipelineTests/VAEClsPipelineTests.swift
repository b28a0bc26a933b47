import CDCCodec
import CDCData
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation
import Testing

/// vae-cls in CDC's edge–cloud setting: its codes in the CDC container, the latent file, the
/// cloud's latents and classifier, and the session's save and resume.
@Suite struct VAEClsPipelineTests {
    /// 64 images 1×8×8 of 4 classes (the bright quadrant).
    func images(_ n: Int = 64, seed: UInt64 = 3) -> LabelledDataset {
        var g = SeededGenerator(seed: seed)
        var pixels: [Float] = [], labels: [Int] = []
        for _ in 0..<n {
            let cls = Int(g.next() % 4)
            for y in 0..<8 { for x in 0..<8 { pixels.append(min(1, 0.2 * g.nextUniform() + ((y / 4) * 2 + x / 4 == cls ? 0.7 : 0.1))) } }
            labels.append(cls)
        }
        return LabelledDataset(pixels: pixels, labels: labels, channels: 1, height: 8, width: 8, classes: 4)
    }

    func session(mask: Int = 3) throws -> VAEClsSession {
        var c = VAEClsConfig()
        c.mask = mask; c.epochs = 1; c.batchSize = 16
        return try VAEClsSession(config: c, for: images())
    }

    @Test func ratePointsFitTheContainerAtTheirMask() {
        for m in 0...4 {
            let p = VAERatePoint.forMask(m)
            #expect(VAERatePoint.mask(forLevels: p.levels) == m)
        }
        let levels: [Int] = [4, 3, 2].map { VAERatePoint.forMask($0).levels }
        #expect(levels == [2, 3, 6])
    }

    @Test func codesTravelInTheContainerAndTheCloudGetsTheLatents() throws {
        let s = try session()
        let data = images()
        s.trainEpoch(data)
        let file = try s.latentFile()
        #expect(VAEClsCodec.isLatentFile(file))
        let fixed = try s.compress(data, coding: .fixed, decoderHash: ModelIdentity.hash(file))
        let coded = try s.compress(data, coding: .histogram, decoderHash: ModelIdentity.hash(file))
        #expect(fixed.mask == 3 && fixed.latentShape == [16, 2, 2])
        // The coded size is the rANS container's bytes, and both decode to the same codes.
        let bytes = coded.encoded()
        #expect(bytes.count == coded.accounting.total)
        let decoded = try LatentContainer.decode(bytes)
        #expect(decoded.symbols == fixed.symbols && decoded.labels == data.labels)
        // The cloud's "restore": the centres of the codes, what the model's classifier reads.
        let latents = try EdgeCodec.restore(decoded, decoderFile: file)
        #expect(latents.latentCodec == "vae-cls" && latents.sampleShape == [16, 2, 2] && latents.count == 64)
        let centres = Set(s.model.quantizer.centres.values)
        #expect(latents.pixels.allSatisfy { centres.contains($0) })
        let (x, _) = data.batch(0..<4)
        let direct = Autograd.noGrad { s.model.eval()(x) }
        let fromLatents = s.model.classify(decoded.symbols.prefix(4 * 64).map { UInt8(Int($0) + 1) }, shape: [4, 16, 2, 2])
        #expect(zip(direct.values, fromLatents.values).allSatisfy { abs($0 - $1) < 1e-5 })
        // A fresh latent classifier is what the cloud trains on them; images need another.
        var cc = ClassifierConfig()
        #expect(cc.modelName(for: latents) == "vae-cls-head")
        #expect(try CloudClassifier.make(cc, for: latents) is Sequential)
        cc.model = "resnext-11"
        #expect(throws: PipelineError.self) { try CloudClassifier.make(cc, for: latents) }
    }

    @Test func corruptOrMismatchedCodesAreRefusedWithAMessage() throws {
        let s = try session()
        let data = images(16)
        let file = try s.latentFile()
        let c = try s.compress(data, coding: .fixed, decoderHash: ModelIdentity.hash(file))
        // m = 3 holds 4 symbols; L = 3 centres: symbol u = 3 is no centre.
        var symbols = c.symbols
        symbols[5] = 2   // q = 2 → u = 3
        let bad = try LatentContainer(mask: 3, latentShape: c.latentShape, symbols: symbols, labels: c.labels, classes: c.classes,
                                      decoderHash: c.decoderHash, samplesPerChunk: 1024)
        #expect { try VAEClsCodec.latents(bad, latentFile: file) } throws: { "\($0)".contains("3 centres") }
        // A flipped byte in the file is caught by its checksums.
        var bytes = c.encoded()
        bytes[bytes.count - 7] ^= 0x10
        #expect(throws: (any Error).self) { try LatentContainer.decode(bytes) }
        // Codes of another latent file, and a file that is not one.
        let other = try VAEClsCodec.latentFile(GlobalRandom.withSeed(9) { VAEClassifier(levels: 3) }, mask: 3, channels: 1, height: 8, width: 8)
        #expect { try VAEClsCodec.latents(c, latentFile: other) } throws: { "\($0)".contains("another latent file") }
        #expect(throws: (any Error).self) { try VAEClsCodec.read([1, 2, 3]) }
    }

    @Test func aSavedSessionResumesWithTheSameModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vae-session-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try session(mask: 4)
        let data = images()
        s.trainEpoch(data)
        try s.save(to: dir)
        #expect(VAEClsSession.exists(in: dir) && EdgeModelSessions.exists(in: dir))
        let r = try #require(try EdgeModelSessions.resume(from: dir) as? VAEClsSession)
        #expect(r.config == s.config && r.epochsDone == 1 && r.systemName == "vae-cls")
        let (x, _) = data.batch(0..<8)
        #expect(r.model.encode(x).symbols == s.model.encode(x).symbols)
        #expect(try r.latentFile() == s.latentFile())
        // Fine-tuning to a clearer m starts from the encoder and classifier, with L of that m.
        let t = try #require(try r.retuned(mask: 3, epochs: 1) as? VAEClsSession)
        #expect(t.uploadMask == 3 && t.model.quantizer.levels == 3)
        #expect(Checkpoint.stateDict(t.model.encoder)["0.weight"] == Checkpoint.stateDict(r.model.encoder)["0.weight"])
    }
}

/// vae-cls with the anchor's 3-D masked context model as its rate model: training, resuming, and
/// uploads coded under the context model.
@Suite struct VAEClsContextModelTests {
    @Test func itTrainsResumesAndCodesUploadsUnderTheContextModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vae-ctx-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = VAEClsPipelineTests().images()
        var c = VAEClsConfig()
        c.mask = 3; c.epochs = 1; c.batchSize = 16; c.rateModel = .context3d
        let s = try VAEClsSession(config: c, for: data)
        #expect(s.model.rateModel == .context3d && s.trainer.contextOptimizer != nil)
        let before = s.model.context!.convA.weight.values
        let stats = s.trainEpoch(data)
        #expect(stats.rate > 0 && s.model.context!.convA.weight.values != before)
        try s.save(to: dir)
        let r = try VAEClsSession.resume(from: dir)
        #expect(r.config.rateModel == .context3d)
        #expect(Checkpoint.stateDict(r.model.context!) == Checkpoint.stateDict(s.model.context!))
        #expect(Checkpoint.stateDict(s.model).keys.contains("context.res1.weight"))

        // The upload coded under the context model: every chunk decodes back (checked inside),
        // and its size is the container's header, labels, framing and the streams.
        let file = try s.latentFile()
        let fixed = try s.compress(data, coding: .fixed, decoderHash: ModelIdentity.hash(file))
        let coded = try VAEClsCodec.contextCoded(fixed, model: s.model)
        let a = fixed.accounting
        #expect(coded.streams.count == 1 && coded.containerBytes == a.header + a.labels + 12 + coded.payloadBytes)
        #expect(coded.modelFileBytes == (try VAEClsCodec.contextModelFile(s.model)).count)
        let coder = try #require(s.model.contextCoder(latentShape: fixed.latentShape))
        let indices = fixed.symbols.map { UInt8(Int($0) + 1) }   // m = 3: u = q + 1
        #expect(try coder.decode(coded.streams[0], samples: data.count) == indices)
        var ideal = 0.0
        for i in 0..<data.count {
            ideal += try indices[(i * 64)..<((i + 1) * 64)].withUnsafeBufferPointer { try coder.idealBits($0) }
        }
        #expect(abs(Double(8 * coded.payloadBytes) - ideal) < 40)
        // Codes that name no centre (m = 3 holds 4 symbols, the model has 3 centres) are refused.
        var symbols = fixed.symbols
        symbols[5] = 2
        let bad = try LatentContainer(mask: 3, latentShape: fixed.latentShape, symbols: symbols, labels: fixed.labels,
                                      classes: fixed.classes, decoderHash: fixed.decoderHash, samplesPerChunk: 1024)
        #expect { try VAEClsCodec.contextCoded(bad, model: s.model) } throws: { "\($0)".contains("names no centre") }
        // A factorized model has no context model to code with.
        let plain = try VAEClsPipelineTests().session()
        #expect(throws: PipelineError.self) { try VAEClsCodec.contextCoded(fixed, model: plain.model) }
    }

    @Test func sessionConfigurationsWithoutARateModelAreFactorized() throws {
        var c = VAEClsConfig()
        c.rateModel = .context3d
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as! [String: Any]
        #expect(json["rateModel"] as? String == "context3d")
        json.removeValue(forKey: "rateModel")
        let old = try JSONDecoder().decode(VAEClsConfig.self, from: JSONSerialization.data(withJSONObject: json))
        var want = c
        want.rateModel = .factorized
        #expect(old == want)
    }
}

/// Experiment configurations written by earlier versions (without the keys added since) still read.
@Suite struct ExperimentConfigReadingTests {
    @Test func anOlderConfigurationReadsWithDefaultsForNewKeys() throws {
        let old = #"{"trainSubset": 5000, "testSubset": 0, "validation": 1000, "masks": [4], "seeds": [7],"#
            + #" "edge": {"mask": 4, "alpha": 48, "guidance": true, "epochs": 3, "batchSize": 64, "learningRate": 0.001, "seed": 0},"#
            + #" "classifier": {"model": "resnext-11", "epochs": 2, "batchSize": 32, "learningRate": 0.05, "weightDecay": 0.0005, "augment": true, "seed": 0}}"#
        let c = try JSONDecoder().decode(ExperimentConfig.self, from: Data(old.utf8))
        #expect(c.trainSubset == 5000 && c.masks == [4] && c.seeds == [7] && c.edge.alpha == 48 && c.classifier.epochs == 2)
        #expect(c.rateWeights.isEmpty && c.codedRows && c.vaeMasks == nil && c.codecTargets == [1, 2])
        // And what is written now reads back the same.
        var now = ExperimentConfig()
        now.vaeMasks = [4, 3]; now.rateWeights = [0.01]; now.vaeRateModels = [.factorized, .context3d]
        let back = try JSONDecoder().decode(ExperimentConfig.self, from: JSONEncoder().encode(now))
        #expect(back.vaeMasks == [4, 3] && back.rateWeights == [0.01] && back.seeds == now.seeds)
        #expect(back.vaeRateModels == [.factorized, .context3d] && c.vaeRateModels == nil)
    }
}
