import CDCCodec
import CDCData
import CDCModels
import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation
import Testing
@testable import CDCPipeline

/// A small labelled dataset: 64 images 1×8×8 whose class is the brightest quadrant.
func toyDataset(count: Int = 64, seed: UInt64 = 1) -> LabelledDataset {
    var g = SeededGenerator(seed: seed)
    var pixels: [Float] = [], labels: [Int] = []
    for _ in 0..<count {
        let cls = Int(g.next() % 4)
        for y in 0..<8 { for x in 0..<8 {
            let q = (y / 4) * 2 + x / 4
            pixels.append(min(1, 0.2 * g.nextUniform() + (q == cls ? 0.7 : 0.1)))
        } }
        labels.append(cls)
    }
    return LabelledDataset(pixels: pixels, labels: labels, channels: 1, height: 8, width: 8, classes: 4)
}

func tempDir() -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-pipeline-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

@Suite struct EdgeSessionTests {
    func config() -> EdgeConfig {
        var c = EdgeConfig()
        c.mask = 2; c.epochs = 2; c.batchSize = 16; c.seed = 5
        return c
    }

    /// Two epochs in one go and one epoch + save + resume + one epoch give the same weights,
    /// bit for bit (optimizer state and the per-epoch seeds are restored).
    @Test func resumeContinuesExactly() throws {
        let data = toyDataset()
        let straight = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        straight.trainEpoch(data); straight.trainEpoch(data)

        let dir = tempDir()
        let first = EdgeSession(config: config(), channels: 1, height: 8, width: 8, classes: 4)
        first.trainEpoch(data)
        try first.save(to: dir)
        let resumed = try EdgeSession.resume(from: dir)
        #expect(resumed.epochsDone == 1 && resumed.history.count == 1)
        resumed.trainEpoch(data)
        for (a, b) in zip(straight.autoencoder.parameters() + straight.classifier.parameters(),
                          resumed.autoencoder.parameters() + resumed.classifier.parameters()) {
            #expect(a.values == b.values)
        }
    }

    /// The architecture is part of the session: a `cdc-ae-wide` session resumes as one, and a
    /// configuration written before the field existed reads as the spec's cdc-ae.
    @Test func autoencoderArchitectureIsSaved() throws {
        var c = config(); c.autoencoder = .wide
        let s = EdgeSession(config: c, channels: 1, height: 8, width: 8, classes: 4)
        s.trainEpoch(toyDataset(count: 32))
        let dir = tempDir()
        try s.save(to: dir)
        let resumed = try EdgeSession.resume(from: dir)
        #expect(resumed.config.autoencoder == .wide && resumed.autoencoder.architecture == "cdc-ae-wide")
        #expect(resumed.autoencoder.parameterCount == s.autoencoder.parameterCount)
        var json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(config())) as! [String: Any]
        json["autoencoder"] = nil
        let old = try JSONDecoder().decode(EdgeConfig.self, from: try JSONSerialization.data(withJSONObject: json))
        #expect(old.autoencoder == .spec)
    }

    @Test func resumeFromNothingIsAClearError() {
        #expect(throws: PipelineError.self) { try EdgeSession.resume(from: tempDir()) }
    }

    @Test func trainingLowersTheLosses() {
        let data = toyDataset(count: 128)
        var c = config(); c.mask = 4
        let s = EdgeSession(config: c, channels: 1, height: 8, width: 8, classes: 4)
        let first = s.trainEpoch(data)
        for _ in 0..<5 { s.trainEpoch(data) }
        #expect(s.history.last!.reconstruction < first.reconstruction)
        #expect(s.history.last!.classification < first.classification)
    }
}

@Suite struct EdgeCodecTests {
    /// compress → container file → restore gives the autoencoder's inference output (clamped
    /// to [0, 1]): exactly with a float32 decoder, within float16 rounding with the default
    /// upload; and the byte accounting matches the real file.
    @Test(arguments: [0, 3, 4], EdgeCodec.DecoderPrecision.allCases)
    func compressRestoreRoundTrip(mask: Int, precision: EdgeCodec.DecoderPrecision) throws {
        let data = toyDataset(count: 37)
        var c = EdgeConfig(); c.mask = mask; c.batchSize = 16
        let s = EdgeSession(config: c, channels: 1, height: 8, width: 8, classes: 4)
        s.trainEpoch(data)
        let decoder = try EdgeCodec.decoderFile(s.autoencoder, channels: 1, precision: precision)
        let parameters = s.autoencoder.decoder.parameters().map { $0.shape.reduce(1, *) }.reduce(0, +)
        #expect(decoder.count > parameters * (precision == .float16 ? 2 : 4))
        #expect(decoder.count < parameters * (precision == .float16 ? 2 : 4) + 2000)   // + header
        let container = try EdgeCodec.compress(s.autoencoder, data, decoderHash: ModelIdentity.hash(decoder), batchSize: 10)
        #expect(container.count == 37 && container.latentShape == [16, 2, 2] && container.labels == data.labels)
        let url = tempDir().appendingPathComponent("train.cdcl")
        try container.write(to: url)
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
        #expect(size == container.accounting.total)
        #expect(container.accounting.symbols == Int((Double(37 * 64 * (5 - mask)) / 8).rounded(.up)))

        let cloud = try EdgeCodec.loadDecoder(decoder)
        let restored = try EdgeCodec.restore(try LatentContainer.read(from: url), decoder: cloud, channels: 1, height: 8, width: 8)
        let direct = Autograd.noGrad { s.autoencoder.eval()(Tensor(data.pixels, shape: [37, 1, 8, 8])) }.values.map { min(max($0, 0), 1) }
        let error = zip(restored.pixels, direct).map { abs($0 - $1) }.max()!
        #expect(error < (precision == .float16 ? 1e-2 : 1e-5))
        #expect(restored.labels == data.labels)
    }

    @Test func wrongDecoderIsRejected() throws {
        let data = toyDataset(count: 8)
        var c = EdgeConfig(); c.mask = 4
        let s = EdgeSession(config: c, channels: 1, height: 8, width: 8, classes: 4)
        let container = try EdgeCodec.compress(s.autoencoder, data, decoderHash: 1)
        var other = EdgeConfig(); other.mask = 2
        let d2 = try EdgeCodec.decoderFile(EdgeSession(config: other, channels: 1, height: 8, width: 8, classes: 4).autoencoder, channels: 1)
        #expect(throws: PipelineError.self) {
            try EdgeCodec.restore(container, decoder: try EdgeCodec.loadDecoder(d2), channels: 1, height: 8, width: 8)
        }
        #expect(throws: (any Error).self) { try EdgeCodec.loadDecoder([1, 2, 3]) }
    }

    /// A `cdc-ae-wide` session's decoder file names its architecture; the cloud rebuilds the
    /// same layers from it and restores what the edge's autoencoder outputs.
    @Test func wideDecoderRoundTrip() throws {
        let data = toyDataset(count: 20)
        var c = EdgeConfig(); c.mask = 2; c.batchSize = 10; c.autoencoder = .wide
        let s = EdgeSession(config: c, channels: 1, height: 8, width: 8, classes: 4)
        s.trainEpoch(data)
        #expect(s.autoencoder.architecture == "cdc-ae-wide")
        let decoder = try EdgeCodec.decoderFile(s.autoencoder, channels: 1, precision: .float32)
        #expect(try SafetensorsFile.decode(decoder).metadata["architecture"] == "cdc-ae-wide")
        let cloud = try EdgeCodec.loadDecoder(decoder)
        #expect(cloud.architecture == "cdc-ae-wide")
        #expect(cloud.decoder.parameterCount == s.autoencoder.decoder.parameterCount)
        let container = try EdgeCodec.compress(s.autoencoder, data, decoderHash: ModelIdentity.hash(decoder))
        let restored = try EdgeCodec.restore(container, decoder: cloud, channels: 1, height: 8, width: 8)
        let direct = Autograd.noGrad { s.autoencoder.eval()(Tensor(data.pixels, shape: [20, 1, 8, 8])) }.values.map { min(max($0, 0), 1) }
        #expect(zip(restored.pixels, direct).map { abs($0 - $1) }.max()! < 1e-5)
    }

    /// Decoder files written before the architecture was named load as the spec's cdc-ae; an
    /// unknown architecture is refused with its name.
    @Test func decoderArchitectureFromTheFile() throws {
        let spec = CDCAutoencoder.image(channels: 1, mask: 3)
        var file = try SafetensorsFile.decode(try EdgeCodec.decoderFile(spec, channels: 1))
        file.metadata["architecture"] = nil
        #expect(try EdgeCodec.loadDecoder(try file.encoded()).architecture == "cdc-ae")
        file.metadata["architecture"] = "cdc-ae-huge"
        do {
            _ = try EdgeCodec.loadDecoder(try file.encoded())
            Issue.record("an unknown architecture was accepted")
        } catch let e as PipelineError {
            #expect(e.description.contains("cdc-ae-huge"))
        }
        // The wide decoder's weights do not fit the spec's layers.
        file.metadata["architecture"] = "cdc-ae-wide"
        #expect(throws: (any Error).self) { try EdgeCodec.loadDecoder(try file.encoded()) }
    }
}

@Suite struct ExperimentReportTests {
    @Test func csvHasTheAgreedColumns() {
        let row = ExperimentRow(method: "cdc", mask: 4, alpha: 48, quality: nil, seed: 0, bpp: 1.1, bppPayload: 1,
                                uplinkBytes: 100, rawBytes: 1000, accuracy: 0.85, accuracyRawTest: 0.8, accuracyLoss: 0.01, seconds: 1)
        let csv = ExperimentReport.csv([row])
        let header = csv.split(separator: "\n")[0].split(separator: ",").map(String.init)
        for c in ["method", "mask", "alpha", "quality", "bpp", "uplink_bytes", "raw_bytes", "accuracy", "accuracy_raw_test", "accuracy_loss"] {
            #expect(header.contains(c))
        }
        #expect(csv.contains("cdc,4,48,,0,1.1000"))
        #expect(ExperimentReport.svg([row]).hasPrefix("<svg"))
        #expect(ExperimentReport.markdown([row], config: ExperimentConfig()).contains("| cdc | 4 | 48 |"))
    }

    func row(_ method: String, _ mask: Int?, _ seed: UInt64, _ acc: Float, loss: Float, sweep: Bool = false) -> ExperimentRow {
        ExperimentRow(method: method, mask: mask, alpha: method == "cdc" ? 8 : nil, quality: nil, seed: seed, bpp: 1, bppPayload: 1,
                      uplinkBytes: 100, rawBytes: 1000, accuracy: acc, accuracyRawTest: acc, accuracyLoss: loss, sweep: sweep, seconds: 1)
    }

    @Test func seedsAreGroupedWithMeanAndSpread() {
        let rows = [row("raw", nil, 0, 0.90, loss: 0.01), row("raw", nil, 1, 0.92, loss: -0.01),
                    row("cdc", 4, 0, 0.89, loss: 0.02), row("cdc", 4, 1, 0.90, loss: 0.01),
                    row("cdc", 4, 0, 0.10, loss: 0.81, sweep: true)]
        let gs = ExperimentReport.groups(rows)
        #expect(gs.count == 2)                                  // the sweep-only row is not in the table
        #expect(gs[1].count == 2 && abs(gs[1].mean - 0.895) < 1e-6 && abs(gs[1].spread - 0.01) < 1e-6)
        #expect(abs(gs[1].meanLoss - 0.015) < 1e-6)
    }

    @Test func claimsAreCheckedBothWays() {
        // CDC loses 1.75 pp (> 1.5: fails), the AE 5.5 pp: margin 3.75 pp > spread 1 pp, and ≥ 2×.
        var rows = [row("cdc", 4, 0, 0.89, loss: 0.02), row("cdc", 4, 1, 0.895, loss: 0.015),
                    row("ae", 4, 0, 0.85, loss: 0.06), row("ae", 4, 1, 0.86, loss: 0.05)]
        var cs = ExperimentReport.claims(rows)
        #expect(cs.map(\.holds) == [false, true, true])
        // An AE as good as CDC: neither the margin nor the paper's factor holds.
        rows[2].accuracyLoss = 0.02; rows[3].accuracyLoss = 0.016
        cs = ExperimentReport.claims(rows)
        #expect(cs.map(\.holds) == [false, false, false])
        #expect(ExperimentReport.markdown(rows, config: ExperimentConfig()).contains("**does not hold**"))
    }

    /// The entropy-coding claims: the 30 % saving at fixed-m=4 accuracy, and at each target rate the best
    /// coded row that fits against JPEG (none below its lowest rate, interpolated inside, its best above).
    @Test func codingClaimsAreCheckedPerTargetRate() {
        func r(_ method: String, _ mask: Int?, _ q: Int?, _ bpp: Double, _ acc: Float, _ lambda: Float? = nil) -> ExperimentRow {
            var x = ExperimentRow(method: method, mask: mask, alpha: mask == nil ? nil : 8, quality: q, seed: 0, bpp: bpp, bppPayload: bpp,
                                  uplinkBytes: 100, rawBytes: 1000, accuracy: acc, accuracyRawTest: acc, accuracyLoss: 0, seconds: 1)
            x.rateWeight = lambda
            return x
        }
        var rows = [r("cdc", 4, nil, 1.1, 0.83), r("cdc-coded", 2, nil, 0.43, 0.828, 0.03), r("cdc-coded", 2, nil, 0.92, 0.834, 0.01),
                    r("jpeg", nil, 1, 0.53, 0.80), r("jpeg", nil, 12, 1.01, 0.83), r("jpeg", nil, 45, 2.0, 0.84)]
        var cs = ExperimentReport.codingClaims(ExperimentReport.groups(rows))
        #expect(cs.map(\.holds) == [true, false])              // 61 % smaller; at 2 bpp JPEG's 84 % beats 83.4 %
        #expect(cs[1].evidence.contains("0.5 bpp: CDC 82.80%") && cs[1].evidence.contains("none (its lowest rate is 0.530 bpp)"))
        rows[5].accuracy = 0.83
        cs = ExperimentReport.codingClaims(ExperimentReport.groups(rows))
        #expect(cs.map(\.holds) == [true, true])
        // No coded row fits 0.4 bpp: the claim cannot hold there.
        #expect(ExperimentReport.codingClaims(ExperimentReport.groups(rows), targets: [0.4]).last?.holds == false)
        // A coded row below fixed m = 4's accuracy by more than 0.3 pp does not count for the saving.
        rows[1].accuracy = 0.82; rows[2].accuracy = 0.826
        #expect(ExperimentReport.codingClaims(ExperimentReport.groups(rows)).first?.holds == false)
    }

    /// results.csv reads back into the rows it was written from (to its rounding), and a
    /// malformed line is refused with its number.
    @Test func resultsCSVReadsBack() throws {
        var coded = row("cdc-coded", 2, 1, 0.8312, loss: 0.0123)
        coded.rateWeight = 0.03; coded.accuracyValidation = 0.85
        var jpeg = ExperimentRow(method: "jpeg", mask: nil, alpha: nil, quality: 12, seed: 0, bpp: 1.0109, bppPayload: 4.2,
                                 uplinkBytes: 990, rawBytes: 7850, accuracy: 0.8295, accuracyRawTest: 0.83, accuracyLoss: 0.02, seconds: 3.5)
        jpeg.sweep = false
        let rows = [row("raw", nil, 0, 0.8495, loss: 0), row("cdc", 4, 0, 0.1, loss: 0.7, sweep: true), coded, jpeg]
        let back = try ExperimentReport.rows(fromCSV: ExperimentReport.csv(rows))
        #expect(ExperimentReport.csv(back) == ExperimentReport.csv(rows))
        #expect(back[2].rateWeight == 0.03 && back[1].sweep && back[3].quality == 12 && back[0].mask == nil)
        let broken = ExperimentReport.csv(rows).replacingOccurrences(of: "0.8312", with: "x")
        #expect(throws: PipelineError.self) { try ExperimentReport.rows(fromCSV: broken) }
    }

    /// Rows of a non-spec autoencoder are grouped and labelled apart, kept through results.csv,
    /// left out of the paper's claims and counted in the coding claims.
    @Test func nonSpecAutoencoderRowsStandApart() throws {
        var wide = row("cdc", 4, 0, 0.95, loss: 0.0)
        wide.autoencoder = "cdc-ae-wide"
        var spec = row("cdc", 4, 0, 0.80, loss: 0.05)
        spec.autoencoder = "cdc-ae"
        let old = row("cdc", 4, 1, 0.82, loss: 0.03)          // a row of a file without the column
        let rows = [row("raw", nil, 0, 0.85, loss: 0), spec, old, wide]
        let gs = ExperimentReport.groups(rows)
        #expect(gs.count == 3)
        #expect(gs.contains { $0.label == "cdc" && $0.count == 2 } && gs.contains { $0.label == "cdc (cdc-ae-wide)" && $0.count == 1 })
        // The spec rows lose 4 pp: the 1.5 pp claim fails although the wide row would pass it.
        #expect(ExperimentReport.claims(rows).first?.holds == false)
        let back = try ExperimentReport.rows(fromCSV: ExperimentReport.csv(rows))
        #expect(back.map(\.autoencoder) == [nil, "cdc-ae", nil, "cdc-ae-wide"])
        let md = ExperimentReport.markdown(rows, config: ExperimentConfig())
        #expect(md.contains("| cdc (cdc-ae-wide) | 4 |") && md.contains("checked on cdc-ae rows only"))
        #expect(ExperimentReport.svg(rows).contains("CDC (cdc-ae-wide)"))
        // Coding claims count every coded CDC row, naming a non-spec one.
        var coded = wide
        coded.method = "cdc-coded"; coded.bpp = 0.5
        let cs = ExperimentReport.codingClaims(ExperimentReport.groups([spec, coded]))
        #expect(cs.first?.holds == true && cs.first?.evidence.contains("cdc-ae-wide") == true)
    }

    /// A run without the raw-data classifiers (rows to merge into another run's results.csv)
    /// trains only the edge rows, with the autoencoder it was given, and writes them.
    @Test func experimentWithoutRawRowsOnToyData() throws {
        var c = ExperimentConfig()
        c.trainSubset = 48; c.validation = 8; c.testSubset = 16
        c.masks = [2]; c.seeds = [3]; c.alphaSweep = []; c.autoAlpha = false
        c.includeBaselines = false; c.includeAE = false; c.includeRaw = false
        c.edge.epochs = 1; c.edge.batchSize = 16; c.edge.autoencoder = .wide
        c.classifier.epochs = 1; c.classifier.batchSize = 16
        let dir = tempDir()
        let exp = RateAccuracyExperiment(config: c, out: dir) { _ in }
        try exp.run(train: toyDataset(count: 64), test: toyDataset(count: 16, seed: 2))
        #expect(exp.rows.map(\.method) == ["cdc", "cdc-coded"])
        #expect(exp.rows.allSatisfy { $0.autoencoder == "cdc-ae-wide" && $0.seed == 3 && $0.accuracyLoss == 0 })
        let back = try ExperimentReport.rows(fromCSV: String(decoding: try Data(contentsOf: dir.appendingPathComponent("results.csv")), as: UTF8.self))
        #expect(back.count == 2 && back[0].autoencoder == "cdc-ae-wide")
    }

    /// Re-rendering a results.csv merged from runs with other seeds measures the losses again
    /// against the mean of all raw rows and groups the seeds.
    @Test func rerenderMeasuresLossesAgainAndGroupsSeeds() throws {
        let dir = tempDir()
        let rows = [row("raw", nil, 0, 0.85, loss: 0), row("cdc", 2, 0, 0.84, loss: 0.01),
                    row("raw", nil, 1, 0.87, loss: 0), row("cdc", 2, 1, 0.86, loss: 0.01)]
        try Data(ExperimentReport.csv(rows).utf8).write(to: dir.appendingPathComponent("results.csv"))
        struct Meta: Encodable { var config: ExperimentConfig; var phaseSeconds: [String: Double] }
        try JSONEncoder().encode(Meta(config: ExperimentConfig(), phaseSeconds: [:])).write(to: dir.appendingPathComponent("timings.json"))
        try ExperimentReport.rerender(dir)
        let back = try ExperimentReport.rows(fromCSV: String(decoding: try Data(contentsOf: dir.appendingPathComponent("results.csv")), as: UTF8.self))
        #expect(back.map(\.accuracyLoss).map { ($0 * 1000).rounded() / 1000 } == [0.01, 0.02, -0.01, 0])
        let md = try String(contentsOf: dir.appendingPathComponent("results.md"), encoding: .utf8)
        #expect(md.contains("| cdc | 2 | 8 |  |  | 2 |"))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("plot.svg").path))
    }

    @Test func rawImagesRoundTrip() throws {
        let data = toyDataset(count: 5)
        let back = try LabelledDataset.fromRawImages(data.rawImages(), labels: data.labels, classes: 4)
        #expect(zip(back.pixels, data.pixels).map { abs($0 - $1) }.max()! <= 0.5 / 255 + 1e-6)
    }
}
