import CDCCodec
import CDCData
import CDCModels
import CDCPipeline
import CDCSafetensors
import Foundation
import Testing

/// The learned prior on disk, the uplink codings and rate control, on tiny data.
@Suite struct EntropyPipelineTests {
    func config(rateWeight: Float = 0.5) -> EdgeConfig {
        var c = EdgeConfig()
        c.mask = 2; c.epochs = 1; c.batchSize = 16; c.seed = 3; c.learnedPrior = true; c.rateWeight = rateWeight
        return c
    }

    @Test func priorFileRoundTripsParametersAndTables() throws {
        let s = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        s.trainEpoch(toyDataset())
        let url = tempDir().appendingPathComponent("prior.safetensors")
        try PriorFile.save(s.prior!, mask: 2, to: url)
        let back = FactorizedPrior(channels: 16)
        let (mask, tables) = try PriorFile.load(into: back, from: url)
        #expect(mask == 2)
        #expect(tables == s.prior!.frequencyTables(mask: 2, total: PriorFile.total))
        #expect(back.means.values == s.prior!.means.values && back.logScales.values == s.prior!.logScales.values)
    }

    @Test func corruptPriorFilesAreRejected() throws {
        let s = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        let url = tempDir().appendingPathComponent("prior.safetensors")
        try PriorFile.save(s.prior!, mask: 2, to: url)
        var file = try SafetensorsFile.read(from: url)
        // A row that no longer sums to the total.
        var f = file.tensors["frequencies"]!
        f.data[0] ^= 0x01
        file.tensors["frequencies"] = f
        try file.write(to: url)
        #expect(throws: PipelineError.self) { try PriorFile.load(into: FactorizedPrior(channels: 16), from: url) }
        // Not a prior at all.
        try SafetensorsFile(tensors: [:], metadata: ["model": "cdc-ae"]).write(to: url)
        #expect(throws: PipelineError.self) { try PriorFile.load(into: FactorizedPrior(channels: 16), from: url) }
    }

    @Test func sessionWithPriorResumes() throws {
        let data = toyDataset()
        let s = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        let stats = s.trainEpoch(data)
        #expect(stats.rate != nil && stats.rate! > 0)
        let dir = tempDir()
        try s.save(to: dir)
        let r = try EdgeSession.resume(from: dir)
        #expect(r.config.rateWeight == 0.5 && r.prior != nil)
        #expect(r.prior!.logits.values == s.prior!.logits.values)
    }

    @Test func retuneCarriesThePriorToTheNewMask() throws {
        let s = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        s.trainEpoch(toyDataset())
        let r = try Retune.session(from: s, mask: 4, learningRate: 1e-4, epochs: 1)
        #expect(r.config.mask == 4 && r.prior != nil)
        #expect(r.prior!.means.values == s.prior!.means.values && r.prior!.logits.values == s.prior!.logits.values)
    }

    /// Every coding decodes to the same symbols; the entropy-coded ones are no larger than the
    /// fixed-length file here (skewed toy codes).
    @Test func everyCodingRestoresTheSameSymbols() throws {
        let data = toyDataset()
        let s = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        s.trainEpoch(data)
        let fixed = try EdgeCodec.compress(s.autoencoder, data, decoderHash: 42)
        let tables = s.prior!.frequencyTables(mask: 2, total: PriorFile.total)
        for coding in Coding.allCases {
            let coded = try EdgeCodec.code(fixed, coding, priorTables: tables)
            #expect(coding == .auto || coded.codingChoice == coding)
            let back = try LatentContainer.decode(coded.encoded())
            #expect(back.symbols == fixed.symbols && back.labels == fixed.labels)
            #expect(back.codingChoice == coded.codingChoice)
        }
        // Tables for another mask do not fit; the prior needs tables.
        #expect(throws: PipelineError.self) {
            try EdgeCodec.code(fixed, .prior, priorTables: s.prior!.frequencyTables(mask: 4))
        }
        #expect(throws: PipelineError.self) { try EdgeCodec.code(fixed, .prior) }
    }

    @Test func rateControlMeetsAReachableTargetAndRefusesAnImpossibleOne() throws {
        let data = toyDataset()
        var base = EdgeConfig()
        base.batchSize = 16; base.seed = 1
        // 8×8 images, 16×2×2 latents: 4 bits per pixel at m = 0 fixed; any coded rate ≤ 5 bpp.
        let (c, ms) = try RateControl.calibrate(target: 5, base: base, calibration: data, epochs: 1)
        #expect(c.mask == 0 && ms.count == 1 && ms[0].bitsPerPixel <= 5)
        #expect(throws: PipelineError.self) {
            try RateControl.calibrate(target: 1e-6, base: base, calibration: data, epochs: 1, bisectionSteps: 1)
        }
    }
}
