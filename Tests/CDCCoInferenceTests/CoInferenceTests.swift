import CDCData
import CDCEntropy
import CDCImageCodecs
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation
import Testing
@testable import CDCCoInference

/// Tiny deterministic images (8-bit values / 255) with labels.
func tinyImages(_ n: Int, seed: UInt64 = 1, size: Int = 28, classes: Int = 10) -> LabelledDataset {
    var g = SeededGenerator(seed: seed)
    let pixels = (0..<(n * size * size)).map { _ in (Float(g.next() % 256) / 255) }
    return LabelledDataset(pixels: pixels, labels: (0..<n).map { $0 % classes }, channels: 1, height: size, width: size, classes: classes)
}

func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float { zip(a.values, b.values).map { abs($0 - $1) }.max() ?? 0 }

@Suite struct SplitClassifierTests {
    @Test func resnextSplitsHaveTheSpecShapesAndComposeToTheWholeModel() throws {
        let model = GlobalRandom.withSeed(3) { ResNeXt.resnext11() }.eval()
        let split = try SplitClassifier(model)
        #expect(split.points == ["input", "S0", "S1", "S2", "S3", "G"])
        let expected = ["input": [1, 28, 28], "S0": [64, 28, 28], "S1": [128, 28, 28], "S2": [256, 14, 14], "S3": [512, 7, 7], "G": [512]]
        for p in split.points { #expect(try split.featureShape(at: p, sample: [1, 28, 28]) == expected[p]) }
        let (x, _) = tinyImages(2).batch(0..<2)
        let whole = Autograd.noGrad { model(x) }
        for p in split.points {
            let composed = try Autograd.noGrad { try split.server(split.device(x, to: p), from: p) }
            #expect(maxAbsDiff(composed, whole) < 1e-4, "split \(p)")
        }
        #expect(throws: SplitError.self) { try split.device(x, to: "S9") }
    }

    @Test func m5SplitsComposeToTheWholeModel() throws {
        let model = GlobalRandom.withSeed(4) { AudioClassifier.m5() }.eval()
        let split = try SplitClassifier(model)
        #expect(split.points == ["input", "S1", "S2", "S3", "S4", "G"])
        #expect(try split.featureShape(at: "S2", sample: [1, 8000]) == [128, 125])
        var g = SeededGenerator(seed: 5)
        let x = Tensor((0..<(2 * 8000)).map { _ in g.nextUniform() * 2 - 1 }, shape: [2, 1, 8000])
        let whole = Autograd.noGrad { model(x) }
        for p in split.points {
            let composed = try Autograd.noGrad { try split.server(split.device(x, to: p), from: p) }
            #expect(maxAbsDiff(composed, whole) < 1e-4, "split \(p)")
        }
    }
}

@Suite struct DISCLikeTests {
    let model = GlobalRandom.withSeed(7) { ResNeXt.resnext11() }.eval()

    func system(_ split: String, tau: Float, bits: Int, coding: FeatureCoding = .rans) throws -> (DISCLikeSystem, SplitClassifier) {
        let s = try SplitClassifier(model)
        let (cx, _) = tinyImages(6, seed: 9).batch(0..<6)
        let features = try Autograd.noGrad { try s.device(cx, to: split) }
        return (try DISCLikeSystem(classifier: s, split: split, tau: tau, bits: bits, coding: coding, calibration: features), s)
    }

    @Test func eightBitsWithoutThresholdRestoresTheFeaturesToWithinHalfAStep() throws {
        let (disc, split) = try system("S3", tau: 0, bits: 8)
        let (x, _) = tinyImages(3, seed: 11).batch(0..<3)
        let h = try Autograd.noGrad { try split.device(x, to: "S3") }
        let restored = try disc.decodeFeatures(disc.encodeFeatures(h))
        #expect(restored.shape == h.shape)
        let per = h.count / 3
        for i in 0..<3 {
            let v = Array(h.values[(i * per)..<((i + 1) * per)]), r = Array(restored.values[(i * per)..<((i + 1) * per)])
            let step = (v.max()! - v.min()!) / 255
            // Half a step, plus the float16 rounding of the range.
            #expect(zip(v, r).map { abs($0 - $1) }.max()! <= step * 0.5 + 2e-3 * v.max()!)
        }
    }

    @Test func thresholdZeroesSmallValues() throws {
        let (disc, split) = try system("S2", tau: 0.5, bits: 4)
        let (x, _) = tinyImages(2, seed: 12).batch(0..<2)
        let h = try Autograd.noGrad { try split.device(x, to: "S2") }
        let restored = try disc.decodeFeatures(disc.encodeFeatures(h))
        let per = h.count / 2
        for i in 0..<2 {
            let peak = h.values[(i * per)..<((i + 1) * per)].map(abs).max()!
            for j in 0..<per where abs(h.values[i * per + j]) <= 0.5 * peak { #expect(restored.values[i * per + j] == 0) }
        }
    }

    @Test func bitsPerSampleAreTheCodedPayloadsBytes() throws {
        for coding in FeatureCoding.allCases {
            let (disc, _) = try system("S3", tau: 0.05, bits: 2, coding: coding)
            let data = tinyImages(4, seed: 13)
            let (x, _) = data.batch(0..<4)
            let payloads = try disc.encode(x)
            let row = try CoInferenceHarness.evaluate(disc, on: data, seed: 0)
            #expect(row.bitsPerSample == Double(payloads.map(\.count).reduce(0, +) * 8) / 4)
            #expect(row.featureValues == 512 * 7 * 7)
            #expect(row.system == (coding == .rans ? "disc-like" : "disc-like-zlib"))
            // The same scores as the features quantized and dequantized directly.
            let direct = try Autograd.noGrad { try disc.classifier.server(disc.decodeFeatures(payloads), from: "S3") }
            #expect(maxAbsDiff(try disc.classify(payloads), direct) == 0)
            #expect(disc.oneOffBytes > 0 || coding == .zlib)
        }
    }

    @Test func truncatedOrCorruptPayloadsAreRefused() throws {
        for coding in FeatureCoding.allCases {
            let (disc, _) = try system("G", tau: 0, bits: 4, coding: coding)
            let (x, _) = tinyImages(1, seed: 14).batch(0..<1)
            let p = try disc.encode(x)[0]
            #expect(throws: SplitError.self) { try disc.classify([Array(p.prefix(3))]) }
            #expect(throws: SplitError.self) { try disc.classify([Array(p.prefix(p.count - 2))]) }
        }
        #expect(throws: SplitError.self) { try system("input", tau: 0, bits: 4) }
        #expect(throws: SplitError.self) { try system("S1", tau: 0, bits: 9) }
    }
}

@Suite struct InputSystemTests {
    let model = GlobalRandom.withSeed(8) { ResNeXt.resnext11() }.eval()

    @Test func rawSendsEightBitPixelsExactly() throws {
        let data = tinyImages(3)
        let raw = RawSystem(classifier: model, sampleShape: [1, 28, 28])
        let (x, _) = data.batch(0..<3)
        let payloads = try raw.encode(x)
        #expect(payloads.allSatisfy { $0.count == 784 })
        #expect(maxAbsDiff(try raw.classify(payloads), Autograd.noGrad { model(x) }) < 1e-5)
        #expect(throws: SplitError.self) { try raw.classify([Array(payloads[0].prefix(700))]) }
    }

    @Test func jpegAndWebPSendScansAndBitstreamsThatDecode() throws {
        let data = tinyImages(3)
        let (x, _) = data.batch(0..<3)
        for kind in ImageCodecKind.allCases {
            let s = try ImageCodecSystem(kind: kind, quality: 50, classifier: model, channels: 1, height: 28, width: 28)
            let payloads = try s.encode(x)
            #expect(try s.classify(payloads).shape == [3, 10])
            // Per-image bytes are the file minus what is shared (JPEG tables) or implied (RIFF headers).
            let image = RawImage(width: 28, height: 28, channels: 1, pixels: data.image8(at: 0))
            let file = kind == .jpeg ? try JPEG.encode(image, quality: 50) : try WebP.encode(image, quality: 50)
            #expect(payloads[0].count + (kind == .jpeg ? s.oneOffBytes : 20) == file.count)
            #expect(throws: SplitError.self) { try s.classify([Array(payloads[0].prefix(5))]) }
        }
    }

    @Test func cdcCodesEachSampleAndRestoresWithTheUploadedDecoder() throws {
        let data = tinyImages(4)
        let (x, _) = data.batch(0..<4)
        let ae = GlobalRandom.withSeed(2) { CDCAutoencoder.image(mask: 4) }
        let decoder = try EdgeCodec.decoderFile(ae, channels: 1, height: 28, width: 28)
        let cdc = try CDCSystem(encoder: ae, decoderFile: decoder, classifier: model, calibration: x)
        let payloads = try cdc.encode(x)
        #expect(cdc.latentShape == [16, 7, 7])
        #expect(cdc.oneOffBytes > decoder.count)
        let expected = Autograd.noGrad { model(cdc.decoder.decode(ae.encode(x).symbols, shape: [4, 16, 7, 7]).clamp(0, 1)) }
        #expect(maxAbsDiff(try cdc.classify(payloads), expected) < 1e-5)
        #expect(throws: SplitError.self) { try cdc.classify([[1, 2, 3]]) }
    }
}

@Suite struct PartitionSearchTests {
    func row(_ split: String, bits: Double, acc: Float, device: Double, server: Double) -> CoInferenceRow {
        CoInferenceRow(system: "disc-like", split: split, config: "c", channel: "none", bitsPerSample: bits, bitsPerPixel: bits / 784,
                       oneOffBytes: 0, accuracy: acc, accuracyLoss: 0, deviceMs: device, serverMs: server, seed: 0, samples: 100)
    }

    @Test func searchPicksTheFrontiersBestPointForEachObjective() {
        let table = [row("S0", bits: 4000, acc: 0.90, device: 0.1, server: 5),
                     row("S2", bits: 600, acc: 0.895, device: 6, server: 3),
                     row("S3", bits: 300, acc: 0.893, device: 9, server: 0.5),
                     row("G", bits: 100, acc: 0.85, device: 9.5, server: 0.01),
                     row("S1", bits: 5000, acc: 0.88, device: 3, server: 6)]
        // Fewest bits within 1 pp of 0.90: S3 (G loses 5 pp).
        #expect(PartitionSearch.fewestBits(table, reference: 0.90, maxLoss: 0.01)?.split == "S3")
        // A slow link favours few bits; a fast one favours little compute.
        #expect(PartitionSearch.lowestLatency(table, bitsPerSecond: 1e5, reference: 0.90, maxLoss: 0.01)?.split == "S3")
        #expect(PartitionSearch.lowestLatency(table, bitsPerSecond: 1e9, reference: 0.90, maxLoss: 0.01)?.split == "S0")
        // The bits frontier drops S1 (more bits and less accuracy than S0).
        #expect(PartitionSearch.bitsFrontier(table).map(\.split) == ["G", "S3", "S2", "S0"])
        #expect(PartitionSearch.fewestBits(table, reference: 0.99, maxLoss: 0.01) == nil)
    }

    @Test func rowsSurviveTheirCSV() throws {
        var r = row("S2", bits: 612.5, acc: 0.8912, device: 1.25, server: 0.5)
        r.featureValues = 50176; r.trainChannel = "bec p=0.01"; r.config = "tau=0.05 b=2"
        let back = try CoInferenceReport.rows(fromCSV: CoInferenceReport.csv([r]))
        #expect(back == [r])
        #expect(throws: SplitError.self) { try CoInferenceReport.rows(fromCSV: "a,b\n1,2\n") }
    }
}

@Suite struct VAEClsSystemTests {
    @Test func vaeClsCodesEachSampleAndItsBitsAreThePayloads() throws {
        let data = tinyImages(4, seed: 21)
        let (x, _) = data.batch(0..<4)
        let model = GlobalRandom.withSeed(5) { VAEClassifier(levels: 3) }.eval()
        let s = try VAEClsSystem(model: model, rateTarget: 1, calibration: x)
        #expect(s.latentShape == [16, 7, 7] && s.featureValues == 784 && s.key == "vae-cls/latent/L=3_R=1/none")
        let payloads = try s.encode(x)
        let row = try CoInferenceHarness.evaluate(s, on: data, seed: 0)
        #expect(row.bitsPerSample == Double(payloads.map(\.count).reduce(0, +) * 8) / 4)
        // At most the fixed-length bits of 784 symbols of 3 centres (2 bits), plus the coder's states.
        #expect(row.bitsPerSample < 784 * 2 + 64)
        // The server classifies the decoded latents exactly as the model does the images.
        let direct = Autograd.noGrad { model(x) }
        #expect(maxAbsDiff(try s.classify(payloads), direct) < 1e-5)
        #expect(throws: (any Error).self) { try s.classify([Array(payloads[0].prefix(3))]) }
    }

    @Test func vaeClsCtx3dCodesEachSampleUnderItsContextModel() throws {
        let data = tinyImages(3, seed: 22)
        let (x, _) = data.batch(0..<3)
        let model = GlobalRandom.withSeed(6) { VAEClassifier(levels: 2, rateModel: .context3d) }.eval()
        let s = try VAEClsSystem(model: model, rateTarget: 0.5, calibration: x)
        #expect(s.key == "vae-cls-ctx3d/latent/L=2_R=0.5/none")
        #expect(s.oneOffBytes == (try VAEClsCodec.contextModelFile(model)).count)
        let payloads = try s.encode(x)
        let coder = try #require(model.contextCoder(latentShape: [16, 7, 7]))
        let symbols = model.encode(x).symbols
        for (i, p) in payloads.enumerated() {
            #expect(try coder.decode(p) == Array(symbols[(i * 784)..<((i + 1) * 784)]))
        }
        let direct = Autograd.noGrad { model(x) }
        #expect(maxAbsDiff(try s.classify(payloads), direct) < 1e-5)
        #expect(throws: SplitError.self) { try s.classify([Array(payloads[0].dropLast())]) }
    }
}
