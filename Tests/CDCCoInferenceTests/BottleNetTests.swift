@testable import CDCCoInference
import CDCData
import CDCModels
import CDCNN
import CDCTensor
import Foundation
import Testing

/// BottleNet++: encoder/decoder geometry at every split, the channels (training layer and fixed
/// test noise), the co-inference system's payloads, phase-2 training and checkpoints.
@Suite struct BottleNetTests {
    /// An untrained resnext-11 cut at its split points, initialised from `seed`.
    static func classifier(seed: UInt64 = 1) throws -> SplitClassifier {
        try GlobalRandom.withSeed(seed) { try SplitClassifier(ResNeXt.resnext11()) }
    }

    /// A BottleNet++ at `split` with freshly initialised layers.
    static func bottleNet(_ classifier: SplitClassifier, split: String, codeChannels: Int,
                          channel: BottleNetChannel = .noiseless, seed: UInt64 = 2) throws -> BottleNet {
        try GlobalRandom.withSeed(seed) {
            try BottleNet(classifier: classifier, split: split, codeChannels: codeChannels, trainChannel: channel)
        }
    }

    /// Four tiny 28×28 images.
    static var images: Tensor { Tensor.rand([4, 1, 28, 28], seed: 7) }

    // MARK: Shapes

    /// The spec's §1.5 C′ at every split (S0 has none in the spec: 4), with the code shape each
    /// geometry gives: the decoder restores exactly the feature's shape.
    @Test func encoderAndDecoderShapesAtEverySplitOfResNeXt11() throws {
        let c = try Self.classifier()
        let cases: [(split: String, feature: [Int], code: [Int], channels: [Int])] = [
            ("S0", [64, 28, 28], [14, 14], [4]),
            ("S1", [128, 28, 28], [14, 14], [1, 2]),
            ("S2", [256, 14, 14], [7, 7], [2, 4, 8]),
            ("S3", [512, 7, 7], [4, 4], [4, 8, 16]),
        ]
        for (split, feature, code, channels) in cases {
            #expect(try c.featureShape(at: split, sample: [1, 28, 28]) == feature)
            for cp in channels {
                let net = try Self.bottleNet(c, split: split, codeChannels: cp)
                net.eval()
                #expect(net.featureShape == feature)
                #expect(net.codeShape == [cp] + code, "\(split) C'=\(cp)")
                #expect(net.codeCount == cp * code[0] * code[1])
                let h = Tensor.rand([2] + feature, seed: 3)
                let z = Autograd.noGrad { net.encoder.forward(h, noiseLevel: 0.05) }
                #expect(z.shape == [2, cp] + code)
                #expect(z.values.allSatisfy { $0 > 0 && $0 < 1 })
                let back = Autograd.noGrad { net.decoder(z) }
                #expect(back.shape == [2] + feature, "\(split) C'=\(cp): decoder gives \(back.shape)")
            }
        }
        #expect(try BottleNetGeometry.default(for: "S2") == .k2s2)
        #expect(try BottleNetGeometry.default(for: "S3") == .k3s2p1)
        #expect(throws: SplitError.self) { _ = try BottleNetGeometry.default(for: "G") }
        #expect(throws: SplitError.self) { _ = try BottleNet(classifier: c, split: "G", codeChannels: 4) }
        #expect(throws: SplitError.self) { _ = try BottleNet(classifier: c, split: "input", codeChannels: 4) }
        #expect(throws: SplitError.self) { _ = try BottleNet(classifier: c, split: "S9", codeChannels: 4) }
    }

    /// Non-square maps (odd and even sides) come back at their size with every geometry, in
    /// training mode with a backward pass too.
    @Test(arguments: [[1, 3, 5], [2, 4, 7]])
    func nonSquareFeatureMaps(feature: [Int]) throws {
        for geometry in BottleNetGeometry.allCases {
            let enc = try BottleNetEncoder(featureShape: feature, codeChannels: 3, geometry: geometry)
            let dec = try BottleNetDecoder(featureShape: feature, codeChannels: 3, geometry: geometry)
            let h = Tensor.rand([2] + feature, seed: 5, requiresGrad: true)
            let z = enc.forward(h, noiseLevel: 0.3)
            #expect(z.shape == [2] + enc.codeShape)
            #expect(dec.codeShape == enc.codeShape)
            let y = dec(z)
            #expect(y.shape == [2] + feature, "\(geometry) on \(feature): \(y.shape)")
            y.sum().backward()
            #expect(h.grad?.shape == h.shape)
        }
        if feature == [2, 4, 7] {
            // Output padding 0 on the height, 1 on the width: the same values as padding 1 on
            // both axes with the extra bottom row cut off.
            let dec = try BottleNetDecoder(featureShape: feature, codeChannels: 3, geometry: .k2s2)
            #expect(dec.outputPadding == (0, 1))
            let z = Tensor.rand([2, 3, 2, 3], seed: 8), d = dec.deconv!
            let y = Autograd.noGrad {
                Tensor.convTranspose2d(z, weight: d.weight, bias: d.bias, stride: (2, 2), outputPadding: (0, 1))
            }
            let wide = Autograd.noGrad {
                Tensor.convTranspose2d(z, weight: d.weight, bias: d.bias, stride: (2, 2), outputPadding: (1, 1))
            }
            #expect(y.shape == [2, 2, 4, 7] && wide.shape == [2, 2, 5, 7])
            let cut = wide.slice(axis: 2, 0..<4)
            for (a, b) in zip(y.values, cut.values) { #expect(abs(a - b) <= 1e-5) }
        }
        #expect(try BottleNetEncoder(featureShape: [1, 3, 5], codeChannels: 2, geometry: .k2s2).codeShape == [2, 1, 2])
        #expect(try BottleNetEncoder(featureShape: [1, 3, 5], codeChannels: 2, geometry: .k3s2p1).codeShape == [2, 2, 3])
        #expect(try BottleNetEncoder(featureShape: [1, 3, 5], codeChannels: 2, geometry: .k3s1p1).codeShape == [2, 3, 5])
    }

    // MARK: Channels

    @Test func channelDescriptionsAndLevels() {
        let channels: [BottleNetChannel] = [.noiseless, .awgn(sigma: 0.1), .bec(p: 0.01)]
        #expect(channels.map(\.description) == ["none", "awgn sigma=0.1", "bec p=0.01"])
        #expect(channels.map(\.noiseLevel) == [0, 0.1, 0.01])
        for c in channels { #expect(BottleNetChannel(parsing: c.description) == c) }
        #expect(BottleNetChannel(parsing: "bec p=2") == nil)
        #expect(BottleNetChannel(parsing: "awgn 0.1") == nil)
        var g = SeededGenerator(seed: 1)
        for _ in 0..<50 {
            guard case .bec(let p) = BottleNetChannel.bec(p: 0.01).sampled(using: &g) else { Issue.record("kind changed"); return }
            #expect(p >= 0 && p <= 0.01)
        }
    }

    @Test func becAtZeroIsTheIdentityOnEightBitValues() {
        let bytes = (0...255).map(UInt8.init)
        #expect(BECChannel.transmit(bytes, p: 0, seed: 9) == bytes.map { Float($0) / 255 })
        // The training layer: round(255x)/255 values pass unchanged.
        let x = Tensor(bytes.map { Float($0) / 255 }, shape: [1, 1, 16, 16])
        var g = SeededGenerator(seed: 3)
        #expect(BottleNetChannel.bec(p: 0).apply(x, generator: &g).values == x.values)
        // And 8-bit quantization is round(255x), 1 → 255 (no wrap to 0).
        #expect(BottleNet.quantize8(Tensor([0, 0.5, 1, 1.2, -0.1, 0.999], shape: [2, 3])) == [[0, 128, 255], [255, 0, 255]])
    }

    @Test func becAtOneErasesEveryBit() {
        let bytes = (0...255).map(UInt8.init)
        #expect(BECChannel.transmit(bytes, p: 1, seed: 9).allSatisfy { $0 == 127.5 / 255 })
        var g = SeededGenerator(seed: 3)
        let y = BottleNetChannel.bec(p: 1).apply(Tensor.rand([2, 3, 4], seed: 1), generator: &g)
        #expect(y.values.allSatisfy { $0 == 127.5 / 255 })
        // In between, a value only loses bits: kept bits are exact, erased ones count half.
        let mid = BECChannel.transmit([0b1010_1010], p: 0.5, seed: 4)[0] * 255
        #expect(mid >= 0 && mid <= 255 && (mid * 2).rounded() == mid * 2)
    }

    @Test func awgnAtZeroIsTheIdentity() {
        let values = (0..<100).map { Float($0) / 99 }
        #expect(AWGN.transmit(values, sigma: 0, seed: 5) == values)
        var g = SeededGenerator(seed: 3)
        let x = Tensor(values, shape: [1, 1, 10, 10])
        #expect(BottleNetChannel.awgn(sigma: 0).apply(x, generator: &g).values == values)
        #expect(BottleNetChannel.noiseless.apply(x, generator: &g).values == values)
    }

    @Test(arguments: [Float(0.05), 0.3])
    func awgnMeasuredSigmaIsWithinFivePercent(sigma: Float) {
        let n = 100_000
        let y = AWGN.transmit([Float](repeating: 0.5, count: n), sigma: sigma, seed: 11)
        let mean = y.reduce(0.0) { $0 + Double($1) } / Double(n)
        let std = (y.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n - 1)).squareRoot()
        #expect(abs(std - Double(sigma)) <= 0.05 * Double(sigma), "measured \(std) for \(sigma)")
        #expect(abs(mean - 0.5) < 0.01)
        // The training layer draws the same distribution.
        var g = SeededGenerator(seed: 12)
        let t = BottleNetChannel.awgn(sigma: sigma).apply(Tensor.zeros([n]), generator: &g).values
        let tStd = (t.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)).squareRoot()
        #expect(abs(tStd - Double(sigma)) <= 0.05 * Double(sigma))
    }

    /// Test noise is a fixed function of the payload: the same payload meets the same noise in
    /// every call, whatever the batch; a different payload meets different noise.
    @Test func theSamePayloadMeetsTheSameNoise() throws {
        let a: [UInt8] = (0..<98).map { UInt8($0 * 7 % 256) }
        var b = a; b[0] ^= 1
        #expect(BottleNetChannel.noiseSeed(for: a, seed: 1) == BottleNetChannel.noiseSeed(for: a, seed: 1))
        #expect(BottleNetChannel.noiseSeed(for: a, seed: 1) != BottleNetChannel.noiseSeed(for: b, seed: 1))
        #expect(BottleNetChannel.noiseSeed(for: a, seed: 1) != BottleNetChannel.noiseSeed(for: a, seed: 2))
        for channel in [BottleNetChannel.awgn(sigma: 0.2), .bec(p: 0.1)] {
            let s = BottleNetChannel.noiseSeed(for: a, seed: 1)
            #expect(channel.transmit(a, seed: s) == channel.transmit(a, seed: s))
            #expect(channel.transmit(a, seed: s) != a.map { Float($0) / 255 })
        }
        // Through the system: payload a alone and a inside a batch of three see the same code.
        let net = try Self.bottleNet(try Self.classifier(), split: "S2", codeChannels: 2)
        let system = BottleNetSystem(model: net, testChannel: .awgn(sigma: 0.2))
        let alone = try system.receivedCode(a)
        #expect(try system.receivedCode(a) == alone)
        #expect(try system.receivedCode(b) != alone)
        let one = try system.classify([a]), three = try system.classify([b, a, b])
        let row = Array(three.values[10..<20])
        for (x, y) in zip(one.values, row) { #expect(abs(x - y) <= 1e-5 * max(1, abs(x))) }
        // A new channel setting for a new evaluation.
        system.testChannel = .bec(p: 0.05)
        #expect(system.channel == "bec p=0.05")
        #expect(try system.receivedCode(a) == BECChannel.transmit(a, p: 0.05, seed: BottleNetChannel.noiseSeed(for: a, seed: system.noiseSeed)))
    }

    /// The BEC layer passes the gradient straight through: dL/dx = dL/dy.
    @Test func becGradientIsStraightThrough() {
        let x = Tensor.rand([2, 3, 2, 2], seed: 21, requiresGrad: true)
        let w = Tensor.randn([2, 3, 2, 2], seed: 22)
        var g = SeededGenerator(seed: 23)
        let y = BottleNetChannel.bec(p: 0.3).apply(x, generator: &g)
        #expect(y.values != x.values)
        (y * w).sum().backward()
        #expect(x.grad?.values == w.values)
        // AWGN's gradient is the identity too.
        let x2 = Tensor.rand([2, 3], seed: 24, requiresGrad: true)
        let w2 = Tensor.randn([2, 3], seed: 25)
        (BottleNetChannel.awgn(sigma: 0.1).apply(x2, generator: &g) * w2).sum().backward()
        #expect(x2.grad?.values == w2.values)
    }

    // MARK: The system

    @Test func systemRoundTrip() throws {
        let net = try Self.bottleNet(try Self.classifier(), split: "S2", codeChannels: 2)
        let plain = BottleNetSystem(model: net)
        #expect(plain.system == "bottlenet++" && plain.split == "S2" && plain.config == "C'=2 8-bit" && plain.channel == "none")
        #expect(plain.oneOffBytes == 0)
        let payloads = try plain.encode(Self.images)
        #expect(payloads.count == 4)
        #expect(payloads.allSatisfy { $0.count == 2 * 7 * 7 })
        let scores = try plain.classify(payloads)
        #expect(scores.shape == [4, 10])
        let finite = scores.values.allSatisfy { $0.isFinite }
        #expect(finite)

        let coded = try BottleNetSystem(model: net, calibration: Self.images)
        #expect(coded.system == "bottlenet++-coded" && coded.config == "C'=2 rANS")
        #expect(coded.oneOffBytes > 0)
        let codedPayloads = try coded.encode(Self.images)
        for (c, p) in zip(codedPayloads, payloads) { #expect(try coded.codeBytes(c) == p) }
        #expect(try coded.classify(codedPayloads).values == scores.values)

        // Wrong sizes and corrupt streams throw.
        #expect(throws: SplitError.self) { _ = try plain.classify([Array(payloads[0].dropLast())]) }
        #expect(throws: SplitError.self) { _ = try plain.classify([payloads[0] + [0]]) }
        #expect(throws: SplitError.self) { _ = try coded.classify([Array(codedPayloads[0].dropLast(3))]) }
        #expect(throws: SplitError.self) { _ = try coded.classify([[1, 2, 3]]) }
        #expect(throws: SplitError.self) { _ = try plain.classify([]) }
    }

    // MARK: Training and checkpoints

    /// Values of every parameter, buffer and counter of `module`, by name.
    static func state(_ module: Module) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (n, t) in module.namedParameters() { out[n] = t.values }
        for (n, b) in module.namedBuffers() { out[n] = b.tensor.values }
        for (n, c) in module.namedCounters() { out[n] = [Float(c.value)] }
        return out
    }

    @Test func phase2StepChangesOnlyTheEncoderAndDecoder() throws {
        let net = try Self.bottleNet(try Self.classifier(), split: "S3", codeChannels: 4, channel: .bec(p: 0.01))
        let trainer = BottleNetTrainer(model: net)
        let backbone = Self.state(net.backbone), encoder = Self.state(net.encoder), decoder = Self.state(net.decoder)
        let r = try trainer.step(Self.images, labels: [0, 1, 2, 3], phase: .frozenBackbone)
        #expect(r.loss.isFinite && r.correct >= 0 && r.correct <= 4)
        #expect(Self.state(net.backbone) == backbone)
        let encoderAfter = Self.state(net.encoder), decoderAfter = Self.state(net.decoder)
        for (name, v) in encoder { #expect(encoderAfter[name] != v, "encoder.\(name) did not change") }
        for (name, v) in decoder { #expect(decoderAfter[name] != v, "decoder.\(name) did not change") }
        #expect(net.backbone.parameters().allSatisfy { $0.requiresGrad && $0.grad == nil })

        // Phase 3 moves the backbone too.
        try trainer.step(Self.images, labels: [0, 1, 2, 3], phase: .fineTune)
        let moved = Self.state(net.backbone)
        #expect(moved["fc.weight"] != backbone["fc.weight"] && moved["stem.0.weight"] != backbone["stem.0.weight"])
        #expect(moved["stem.1.running_mean"] != backbone["stem.1.running_mean"])
    }

    /// After training, the encoder's and decoder's batch norms hold the moments of what they
    /// normalize (not a running average still near its initial variance of 1).
    @Test func recalibratedNormsHoldTheMomentsOfTheirInputs() throws {
        let net = try Self.bottleNet(try Self.classifier(), split: "S3", codeChannels: 4, channel: .noiseless)
        let data = LabelledDataset(pixels: Self.images.values, labels: [0, 1, 2, 3], channels: 1, height: 28, width: 28, classes: 10)
        let trainer = BottleNetTrainer(model: net, config: BottleNetTrainingConfig(batchSize: 4))
        _ = try trainer.step(Self.images, labels: [0, 1, 2, 3], phase: .frozenBackbone)
        try trainer.recalibrateNorms(on: data)
        net.eval()
        let pre = try Autograd.noGrad { net.decoder.preNorm(try net.code(Self.images, noiseLevel: 0)) }
        let c = pre.shape[1], hw = pre.shape[2] * pre.shape[3], v = pre.values
        for ch in 0..<c {
            var xs: [Float] = []
            for i in 0..<4 { xs += v[((i * c + ch) * hw)..<((i * c + ch + 1) * hw)] }
            let mean: Float = xs.reduce(0, +) / Float(xs.count)
            var variance: Float = 0
            for x in xs { variance += (x - mean) * (x - mean) }
            variance /= Float(xs.count)
            #expect(abs(net.decoder.bn.runningMean.tensor.values[ch] - mean) <= 1e-4 + 1e-3 * abs(mean))
            #expect(abs(net.decoder.bn.runningVar.tensor.values[ch] - variance) <= 1e-3 * variance + 1e-7)
        }
    }

    /// The training loop: phase 2 then phase 3 over a tiny dataset, with progress reports.
    @Test func trainingRunsBothPhasesWithProgress() throws {
        let x = Self.images
        let data = LabelledDataset(pixels: x.values, labels: [0, 1, 2, 3], channels: 1, height: 28, width: 28, classes: 10)
        nonisolated(unsafe) var reports: [String] = []
        let config = BottleNetTrainingConfig(phase2Epochs: 1, phase3Epochs: 1, batchSize: 2, seed: 5)
        let net = try GlobalRandom.withSeed(3) {
            try BottleNetTrainer.train(classifier: try Self.classifier(), split: "S3", codeChannels: 4,
                                       channel: .awgn(sigma: 0.1), data: data, config: config) { epoch, batch, batches, status in
                reports.append("\(epoch) \(batch)/\(batches) \(status)")
            }
        }
        #expect(reports.count == 4)
        #expect(reports[0].hasPrefix("1 1/2 phase 2 loss ") && reports[3].hasPrefix("1 2/2 phase 3 loss "))
        #expect(net.trainChannel == .awgn(sigma: 0.1) && net.codeShape == [4, 4, 4])
        #expect(!net.training && !net.backbone.training)
    }

    @Test func saveAndLoadGiveTheSameScores() throws {
        let net = try Self.bottleNet(try Self.classifier(seed: 1), split: "S2", codeChannels: 2, channel: .awgn(sigma: 0.1))
        let trainer = BottleNetTrainer(model: net)
        try trainer.step(Self.images, labels: [0, 1, 2, 3], phase: .frozenBackbone)
        try trainer.step(Self.images, labels: [0, 1, 2, 3], phase: .fineTune)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-bottlenet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("bottlenet.safetensors")
        try net.save(to: url)

        let loaded = try BottleNet.load(from: url, classifier: try Self.classifier(seed: 99))
        #expect(loaded.split == "S2" && loaded.codeChannels == 2 && loaded.geometry == .k2s2)
        #expect(loaded.trainChannel == .awgn(sigma: 0.1))
        #expect(Self.state(loaded) == Self.state(net))
        for channel in [BottleNetChannel.noiseless, .awgn(sigma: 0.1)] {
            let a = BottleNetSystem(model: net, testChannel: channel), b = BottleNetSystem(model: loaded, testChannel: channel)
            let pa = try a.encode(Self.images), pb = try b.encode(Self.images)
            #expect(pa == pb)
            #expect(try a.classify(pa).values == b.classify(pb).values)
        }

        // A file that is not a BottleNet++ checkpoint is refused.
        let plain = dir.appendingPathComponent("plain.safetensors")
        try Checkpoint.save(try Self.classifier().model, to: plain)
        #expect(throws: SplitError.self) { _ = try BottleNet.load(from: plain, classifier: try Self.classifier()) }
    }
}
