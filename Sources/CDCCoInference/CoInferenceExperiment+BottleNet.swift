import CDCData
import CDCModels
import CDCNN
import CDCPipeline
import CDCTensor
import Foundation

extension BottleNetSpec {
    /// The training channel as the BottleNet++ module names it (`bec=0.01` → BEC with pmax 0.01).
    public var trainingChannel: BottleNetChannel {
        switch channelKind?.kind {
        case "awgn": return .awgn(sigma: channelKind!.level)
        case "bec": return .bec(p: channelKind!.level)
        default: return .noiseless
        }
    }

    /// The file the trained model is cached in.
    func fileName(seed: UInt64) -> String {
        "bottlenet-\(split)-c\(codeChannels)-\(channel.replacingOccurrences(of: "=", with: ""))-s\(seed).safetensors"
    }
}

extension CoInferenceExperiment {
    /// A fresh copy of the raw classifier (BottleNet++'s phase 3 fine-tunes its backbone).
    func rawCopy(like data: LabelledDataset) throws -> Module {
        var cc = config.classifier
        cc.seed = config.seed
        let m = try CloudClassifier.make(cc, for: data)
        _ = try Checkpoint.load(into: m, from: models.appendingPathComponent("raw-s\(config.seed).safetensors"))
        return m
    }

    /// The control of the BottleNet++ rows: the raw classifier given what their phase 3 gives
    /// it — the same epochs of fine-tuning with Adam at the same rate, on the same images — with
    /// no bottleneck (cached as `models/raw-finetuned-s<seed>.safetensors`). Phase 3 trains the
    /// backbone further, so against an under-trained raw classifier BottleNet++ can "gain"
    /// accuracy; against this row it cannot.
    func fineTunedRawRow(train: LabelledDataset, test: LabelledDataset) throws {
        guard config.bottlenetPhase3Epochs > 0, !config.bottlenet.isEmpty else { return }
        let url = models.appendingPathComponent("raw-finetuned-s\(config.seed).safetensors")
        let model = try rawCopy(like: train)
        if FileManager.default.fileExists(atPath: url.path) {
            _ = try Checkpoint.load(into: model, from: url)
        } else {
            let tc = BottleNetTrainingConfig()
            let trainer = ClassifierTrainer(model: model, optimizer: Adam(model.parameters(), learningRate: tc.phase3LearningRate))
            try timed("classifier:raw-finetuned") {
                for epoch in 0..<config.bottlenetPhase3Epochs {
                    var correct = 0, seen = 0
                    for indices in train.batchIndices(size: tc.batchSize, shuffle: config.seed &+ 3 &* 7_919 &+ UInt64(epoch) &* 104_729,
                                                      dropLast: train.count >= tc.batchSize) {
                        let (x, y) = train.batch(indices)
                        correct += trainer.step(x, labels: y).correct; seen += y.count
                    }
                    log(String(format: "  [raw fine-tuned like phase 3] epoch %d: acc %.1f%%", epoch + 1, 100 * Float(correct) / Float(max(seen, 1))))
                }
                try Checkpoint.save(model, to: url, metadata: ["trained_on": "raw, then fine-tuned as BottleNet++'s phase 3"])
            }
        }
        model.eval()
        try measure(RawSystem(classifier: model, sampleShape: train.sampleShape, name: "raw-finetuned"), on: test)
    }

    /// One BottleNet++ configuration: trained from the raw classifier (phase 2 with the backbone
    /// frozen, then phase 3 fine-tuning all; cached), then measured on the test set over the
    /// noiseless channel (8-bit and rANS-coded rows) and over its channel's test levels (the
    /// first `channelTestSubset` test images: each level re-runs the device part, since the
    /// encoder reads the channel's level).
    func bottlenetRows(_ spec: BottleNetSpec, train: LabelledDataset, calibration: LabelledDataset, test: LabelledDataset) throws {
        let url = models.appendingPathComponent(spec.fileName(seed: config.seed))
        let label = "bottlenet++ \(spec.split) C'=\(spec.codeChannels) trained \(spec.trainingChannel)"
        let net: BottleNet
        if FileManager.default.fileExists(atPath: url.path) {
            net = try BottleNet.load(from: url, classifier: SplitClassifier(rawCopy(like: train)))
        } else {
            var tc = BottleNetTrainingConfig()
            tc.phase2Epochs = config.bottlenetPhase2Epochs; tc.phase3Epochs = config.bottlenetPhase3Epochs; tc.seed = config.seed
            var last = (0, 0)
            net = try timed("bottlenet-train") {
                try BottleNetTrainer.train(classifier: SplitClassifier(rawCopy(like: train)), split: spec.split, codeChannels: spec.codeChannels,
                                           channel: spec.trainingChannel, data: train, config: tc) { epoch, batch, batches, status in
                    if batch == batches && (epoch, batch) != last {
                        last = (epoch, batch)
                        self.log("  [\(label)] epoch \(epoch): \(status)")
                    }
                }
            }
            try net.save(to: url)
        }
        let trained = spec.trainingChannel.description
        // Noiseless: the paper's 8-bit code and the same codes rANS-coded, on the whole test set.
        try measure(BottleNetSystem(model: net, testChannel: .noiseless), on: test, trainChannel: trained)
        try measure(try BottleNetSystem(model: net, calibration: calibration.batch(0..<calibration.count).0, testChannel: .noiseless),
                    on: test, trainChannel: trained)
        // The robustness curve over the training channel's kind.
        let levels: [BottleNetChannel]
        switch spec.trainingChannel {
        case .awgn: levels = config.testSigmas.filter { $0 > 0 }.map { .awgn(sigma: $0) }
        case .bec: levels = config.testErasures.filter { $0 > 0 }.map { .bec(p: $0) }
        case .noiseless: levels = []
        }
        let curve = config.channelTestSubset > 0 ? test.prefix(min(config.channelTestSubset, test.count)) : test
        for level in levels {
            try measure(BottleNetSystem(model: net, testChannel: level), on: curve, trainChannel: trained)
        }
    }
}

extension CoInferenceDeployment {
    /// A trained BottleNet++ system named by a key's fields (`bottlenet++` or
    /// `bottlenet++-coded`, split, `C'=4 8-bit|rANS`, test channel), from
    /// `models/bottlenet-<split>-c<C′>-<training channel>-s<seed>.safetensors`.
    func bottlenet(system: String, split: String, config: String, channel: String) throws -> (any CoInferenceSystem)? {
        guard system == "bottlenet++" || system == "bottlenet++-coded" else { return nil }
        guard let k = Self.settings(config)["C'"].flatMap(Int.init) else { throw SplitError("\(system) needs C'=… in '\(config)'") }
        guard let test = BottleNetChannel(parsing: channel) else { throw SplitError("unknown channel '\(channel)' (none, awgn sigma=…, bec p=…)") }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: models.path)) ?? []
        guard let file = files.sorted().first(where: { $0.hasPrefix("bottlenet-\(split)-c\(k)-") && $0.hasSuffix("-s\(seed).safetensors") }) else {
            throw SplitError("no trained BottleNet++ at \(split) with C'=\(k) in \(models.path)")
        }
        var cc = ClassifierConfig()
        cc.seed = seed
        let backbone = try CloudClassifier.make(cc, for: train)
        let net = try BottleNet.load(from: models.appendingPathComponent(file), classifier: SplitClassifier(backbone))
        return system == "bottlenet++" ? BottleNetSystem(model: net, testChannel: test)
                                       : try BottleNetSystem(model: net, calibration: calibration, testChannel: test)
    }
}
