import ArgumentParser
import CDCCloudTrainer
import CDCCodec
import CDCFileIO
import CDCData
import CDCNN
import CDCPipeline
import CDCStore
import CDCTensor
import CDCWire
import Foundation

/// `cdc cloud …`: stage 2 in the cloud.
struct Cloud: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The cloud: serve uploads, restore the data and train the advanced classifier.",
                                                    subcommands: [CloudServe.self, CloudAddEdge.self, CloudTrain.self])
}

/// `cdc cloud train`: restore the training set with the uploaded decoder and train resnext.
struct CloudTrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Restore the uploaded training set and train resnext-11/29; evaluate through the codec and on raw test data.",
        discussion: """
            From files (--container, --decoder) or from the cloud's store (--store, --edge): the clearest complete \
            upload of the edge is restored, 10 % of it held out; the held-out accuracy after every epoch goes to the \
            store (and /metrics), and the mask policy asks the edge for clearer data once training has converged. \
            With --follow it then waits for that upload and trains again. The image shape comes from the decoder.
            """)

    @OptionGroup var engine: EngineOptions
    @Option(help: "Training-set container (`cdc edge compress --split train`).") var container: String?
    @Option(help: "Test-set container (`cdc edge compress --split test`), for the through-the-codec accuracy (with --store: of the upload it was encoded for).") var testContainer: String?
    @Option(help: "The uploaded decoder (safetensors).") var decoder: String?
    @Option(help: "The cloud's store (instead of --container/--decoder).") var store: String?
    @Option(help: "The edge whose uploads to train on (with --store).") var edge: String?
    @Flag(help: "With --store: after training, wait for a clearer upload and train on it too.") var follow = false
    @Option(help: "With --follow: give up waiting after this many seconds.") var followTimeout: Double = 3600
    @Option(help: "Raw test images for the raw-test accuracy: a dataset directory in any format `cdc edge train --data` reads (default: Debian's Fashion-MNIST, when the images are 1×28×28).")
    var data: String?
    @Option(help: "The format of --data (default: detected).") var format: DatasetFormat?
    @Option(help: "Test images to evaluate on (0 = all).") var testSubset = 0
    @Option(help: "auto (resnext-11 for images, m5 for audio), resnext-11, resnext-29 or m5.") var model = "auto"
    @Option(help: "Epochs.") var epochs = 10
    @Option(help: "Batch size (an epoch drops the last partial batch).") var batch = 128
    @Option(help: "Peak learning rate (SGD, cosine).") var lr: Float = 0.05
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write the trained classifier here (safetensors).") var out: String?
    @Option(help: "Write what was trained and measured (upload, bytes, accuracies) to this JSON file.") var report: String?

    var classifierConfig: ClassifierConfig {
        var cfg = ClassifierConfig()
        cfg.model = model; cfg.epochs = epochs; cfg.batchSize = batch; cfg.learningRate = lr; cfg.seed = seed
        return cfg
    }

    mutating func run() async throws {
        try engine.apply()
        guard epochs >= 1, batch >= 2, testSubset >= 0 else { throw ValidationError("--epochs ≥ 1, --batch ≥ 2 and --test-subset ≥ 0 are required") }
        if let store {
            guard let edge else { throw ValidationError("--store needs --edge NAME") }
            let s = try await SQLiteUploadStore.open(path: store)
            do {
                var settings = CloudTrainerSettings()
                settings.classifier = classifierConfig; settings.follow = follow; settings.followTimeout = followTimeout
                let trainer = CloudTrainer(store: s, edge: edge, settings: settings, progress: ProgressPrinter().handler)
                let trained = try await trainer.run()
                try await s.close()
                for t in trained { try evaluate(t) }
            } catch {
                try? await s.close()
                throw error
            }
            return
        }
        guard let container, let decoder else { throw ValidationError("give --container and --decoder, or --store and --edge") }
        let decoderFile = [UInt8](try Data(contentsOf: URL(fileURLWithPath: decoder)))
        let codes = try LatentContainer.read(from: URL(fileURLWithPath: container))
        let train = try EdgeCodec.restore(codes, decoderFile: decoderFile)
        log("restored \(train.count) training samples (\(train.geometry)); training \(classifierConfig.modelName(for: train)) for \(epochs) epochs")
        let printer = ProgressPrinter()
        let total = epochs
        let net = try CloudClassifier.train(train, config: classifierConfig) { epoch, batch, batches, status in
            printer.handle(.step(task: "epoch \(epoch)/\(total)", done: batch, total: batches, status: status))
        }
        let upload = UploadStatus(id: "file", spec: UploadSpec(mask: codes.mask, decoderHash: codes.decoderHash, samples: codes.count,
                                                               samplesPerPart: codes.count, latentShape: codes.latentShape,
                                                               classes: codes.classes),
                                  storedParts: [0], storedBytes: codes.accounting.total, decoderStored: true)
        try evaluate(TrainedClassifier(upload: upload, model: net, modelName: classifierConfig.modelName(for: train),
                                       decoderFile: decoderFile, trainImages: train.count,
                                       heldOutImages: 0, heldOutAccuracy: [], uplinkBytes: codes.accounting.total + decoderFile.count,
                                       geometryOf: train))
    }

    /// Prints (and with --report writes) the accuracies of a trained classifier; with --out saves it.
    func evaluate(_ t: TrainedClassifier) throws {
        let m = t.upload.spec.mask
        var summary = CloudTrainingSummary(t, config: classifierConfig)
        if let testContainer {
            // The deployment figure: test images the edge encoded with this upload's encoder.
            let tc = try LatentContainer.read(from: URL(fileURLWithPath: testContainer))
            if let (accuracy, images) = try t.accuracy(throughCodec: tc, limit: testSubset) {
                summary.accuracyThroughCodec = accuracy; summary.testImages = images
                print(String(format: "m = %d: test accuracy through the codec %.2f%% (%d samples)", m, 100 * accuracy, images))
            } else {
                log("\(testContainer) was encoded by another encoder than upload \(t.upload.id): no through-the-codec accuracy for it")
            }
        }
        if let raw = try rawTest(for: t) {
            let accuracy = CloudClassifier.accuracy(t.model, on: raw)
            summary.accuracyRawTest = accuracy
            let heldOut = t.heldOutAccuracy.last.map { String(format: "; held out, restored: %.2f%%", 100 * $0) } ?? ""
            print(String(format: "m = %d: test accuracy on raw data %.2f%% (%d samples%@)", m, 100 * accuracy, raw.count, heldOut))
        }
        if let out { try CDCNN.Checkpoint.save(t.model, to: URL(fileURLWithPath: out), metadata: ["model": t.modelName, "mask": "\(m)"]) }
        if let report {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try DurableFile.write(try enc.encode(summary), to: URL(fileURLWithPath: report))
        }
    }

    /// The raw test split of --data (or Fashion-MNIST when the images are its shape), if any;
    /// audio clips are read at the rate and length the classifier was trained on.
    func rawTest(for t: TrainedClassifier) throws -> LabelledDataset? {
        if t.modelName == "vae-cls-head" {
            log("the classifier reads vae-cls latents: no accuracy on raw data (give --test-container, test images the edge encoded)")
            return nil
        }
        var test: LabelledDataset
        if let data {
            var source = try DatasetSource(path: URL(fileURLWithPath: data), format: format)
            if let rate = t.sampleRate { source.audio.sampleRate = rate; source.audio.length = t.width }
            test = try source.load(.test)
        } else if t.sampleRate == nil, (t.channels, t.height, t.width) == (1, 28, 28), let d = try? DatasetSource.fashionMNIST.load(.test) {
            test = d
        } else {
            return nil
        }
        guard (test.channels, test.height, test.width) == (t.channels, t.height, t.width), test.sampleRate == t.sampleRate else {
            throw ValidationError("the test data is \(test.geometry); the classifier was trained on \(t.sampleRate.map { "\(t.width) samples at \($0) Hz" } ?? "\(t.channels)×\(t.height)×\(t.width)")")
        }
        if testSubset > 0 { test = test.prefix(testSubset) }
        return test
    }
}
