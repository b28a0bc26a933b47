import CDCCodec
import CDCData
import CDCModels
import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation
import Testing
@testable import CDCPipeline

/// The 1-D pipeline: cdc-ae-1d + cdc-ec-1d on the edge, containers of [K, L/16] latents, the
/// decoder file naming the clip length and sample rate, and m5 on the cloud.
@Suite struct AudioPipelineTests {
    /// `perClass` clips of `length` samples at 8 kHz for each of 4 tones (200, 600, 1400, 2600 Hz)
    /// with a random phase, level and a little noise: a set any classifier separates.
    static func tones(perClass: Int, length: Int = 1024, seed: UInt64) -> LabelledDataset {
        var g = SeededGenerator(seed: seed)
        let freqs: [Float] = [200, 600, 1400, 2600]
        var samples: [Float] = [], labels: [Int] = []
        for i in 0..<(perClass * freqs.count) {
            let c = i % freqs.count
            let phase = Float(g.next() % 1000) / 1000 * 2 * .pi
            let level = 0.3 + Float(g.next() % 1000) / 2000
            for t in 0..<length {
                let noise = (Float(g.next() % 2001) / 1000 - 1) * 0.02
                samples.append(level * sin(2 * .pi * freqs[c] * Float(t) / 8000 + phase) + noise)
            }
            labels.append(c)
        }
        return LabelledDataset(audio: samples, labels: labels, length: length, sampleRate: 8000, classes: 4)
    }

    func config(mask: Int = 4) -> EdgeConfig {
        var c = EdgeConfig()
        c.mask = mask; c.batchSize = 16; c.epochs = 2; c.alpha = EdgeConfig.defaultAudioAlpha
        return c
    }

    @Test func edgeToCloudOnAudioClips() throws {
        let train = Self.tones(perClass: 12, seed: 1), test = Self.tones(perClass: 4, seed: 2)
        let session = try EdgeSession(config: config(), for: train)
        #expect(session.config.autoencoder == .audio)
        #expect(session.sampleRate == 8000)
        for _ in 0..<2 { session.trainEpoch(train) }

        // The decoder file names the architecture, the clip length and the sample rate.
        let decoder = try EdgeCodec.decoderFile(session)
        let meta = try SafetensorsFile.decode(decoder).metadata
        #expect(meta["architecture"] == "cdc-ae-1d" && meta["sample_rate"] == "8000" && meta["length"] == "1024")

        // Containers of [16, L/16] latents, through the file format, restore to clips of the same shape.
        let codes = try LatentContainer.decode(try session.compress(train, coding: .auto, decoderHash: ModelIdentity.hash(decoder)).encoded())
        #expect(codes.latentShape == [16, 64])
        #expect(codes.count == train.count)
        let restored = try EdgeCodec.restore(codes, decoderFile: decoder)
        #expect(restored.isAudio && restored.sampleRate == 8000 && restored.width == 1024)
        #expect(restored.sampleShape == [1, 1024])
        #expect(restored.labels == train.labels)
        #expect(restored.pixels.allSatisfy { $0 >= -1 && $0 <= 1 })
        #expect(restored.pixels.contains { $0 < 0 })   // audio is not clamped to [0, 1] like images

        // The cloud trains m5 (auto) on the restored clips and reads restored test clips.
        var cc = ClassifierConfig()
        cc.epochs = 3; cc.batchSize = 16; cc.learningRate = 0.02
        #expect(cc.modelName(for: restored) == "m5")
        let model = try CloudClassifier.train(restored, config: cc)
        let testCodes = try session.compress(test, coding: .fixed, decoderHash: ModelIdentity.hash(decoder))
        let accuracy = CloudClassifier.accuracy(model, on: try EdgeCodec.restore(testCodes, decoderFile: decoder))
        #expect(accuracy.isFinite && accuracy >= 0 && accuracy <= 1)
    }

    @Test func sessionsKeepTheSampleRateAcrossSaveAndResume() throws {
        let data = Self.tones(perClass: 4, length: 256, seed: 3)
        var c = config()
        c.epochs = 1
        let s = try EdgeSession(config: c, for: data)
        s.trainEpoch(data)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-audio-session-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try s.save(to: dir)
        let back = try EdgeSession.resume(from: dir)
        #expect(back.sampleRate == 8000 && back.width == 256 && back.config.autoencoder == .audio)
        #expect(back.accepts(data))
        #expect(!back.accepts(Self.tones(perClass: 4, length: 512, seed: 3)))
        // A retuned session keeps the geometry too.
        let r = try Retune.session(from: back, mask: 2, learningRate: 1e-4, epochs: 1)
        #expect(r.sampleRate == 8000 && r.config.mask == 2)
    }

    @Test func wrongShapesAndModelsAreRefusedWithAMessage() throws {
        let odd = Self.tones(perClass: 4, length: 1000, seed: 4)   // not a multiple of 16
        do { _ = try EdgeSession(config: config(), for: odd); Issue.record("a 1000-sample clip was accepted") } catch {
            #expect("\(error)".contains("multiple of 16"))
        }
        var wide = config()
        wide.autoencoder = .wide
        #expect(throws: PipelineError.self) { _ = try EdgeSession(config: wide, for: Self.tones(perClass: 4, length: 256, seed: 5)) }
        var cc = ClassifierConfig()
        cc.model = "resnext-11"
        #expect(throws: PipelineError.self) { _ = try CloudClassifier.make(cc, for: odd) }
        let images = LabelledDataset(pixels: [Float](repeating: 0, count: 2 * 16), labels: [0, 1], channels: 1, height: 4, width: 4, classes: 2)
        cc.model = "m5"
        #expect(throws: PipelineError.self) { _ = try CloudClassifier.make(cc, for: images) }
    }

    @Test func timeShiftMovesClipsAndFillsWithZeros() {
        let data = Self.tones(perClass: 2, length: 64, seed: 6)
        let (x, _) = data.batch(0..<data.count)
        let before = x.values
        var g = SeededGenerator(seed: 9)
        Augmentation.timeShift(x, maxShift: 8, generator: &g)
        let after = x.values
        var shifted = 0
        for i in 0..<data.count {
            let a = Array(before[(i * 64)..<((i + 1) * 64)]), b = Array(after[(i * 64)..<((i + 1) * 64)])
            guard a != b else { continue }
            shifted += 1
            // b is a shifted by some s in −8…8 with zeros shifted in.
            let s = (-8...8).first { s in (0..<64).allSatisfy { t in
                let src = t - s
                return b[t] == (src >= 0 && src < 64 ? a[src] : 0)
            } }
            #expect(s != nil)
        }
        #expect(shifted > 0)
    }
}


/// The audio claims of `results.md`: CDC's loss at m = 4, the AE's against CDC's, CDC against Opus.
@Suite struct AudioClaimTests {
    func row(_ method: String, _ mask: Int?, _ acc: Float, loss: Float, bpp: Double, kbps: Int? = nil) -> ExperimentRow {
        ExperimentRow(method: method, mask: mask, alpha: method.hasPrefix("cdc") ? 16 : nil, quality: kbps, seed: 0, bpp: bpp,
                      bppPayload: bpp, uplinkBytes: 100, rawBytes: 1000, accuracy: acc, accuracyRawTest: acc,
                      accuracyLoss: loss, seconds: 1)
    }

    @Test func claimsHoldAndFailOnTheNumbers() {
        var rows = [row("raw", nil, 0.99, loss: 0, bpp: 16), row("cdc", 4, 0.98, loss: 0.01, bpp: 1.04),
                    row("cdc-coded", 4, 0.98, loss: 0.01, bpp: 0.5), row("ae", 4, 0.90, loss: 0.09, bpp: 1.04),
                    row("opus", nil, 0.95, loss: 0.04, bpp: 0.8, kbps: 6), row("opus", nil, 0.99, loss: 0, bpp: 1.6, kbps: 12)]
        var cs = ExperimentReport.claims(rows, audio: true)
        #expect(cs.count == 3)
        // (a) 1 pp ≤ 2; (b) 9 pp ≥ 2 × 1; (c) at 0.8 b/sample coded CDC 98 % ≥ 95 %, but at 1.6 CDC 98 % < Opus 99 %.
        #expect(cs.map(\.holds) == [true, true, false])
        rows[5].accuracy = 0.975
        cs = ExperimentReport.claims(rows, audio: true)
        #expect(cs[2].holds)
        rows[1].accuracyLoss = 0.05; rows[2].accuracyLoss = 0.05
        cs = ExperimentReport.claims(rows, audio: true)
        #expect(!cs[0].holds && !cs[1].holds)
        var config = ExperimentConfig()
        config.sampleRate = 8000
        let md = ExperimentReport.markdown(rows, config: config)
        #expect(md.contains("bits/sample (total uplink)") && md.contains("kbit/s") && md.contains("(c) At each Opus rate"))
        #expect(ExperimentReport.svg(rows, audio: true).contains("bits per audio sample"))
    }
}
