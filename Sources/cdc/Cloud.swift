import ArgumentParser
import CDCCodec
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
            With --follow it then waits for that upload and trains again.
            """)

    @OptionGroup var engine: EngineOptions
    @Option(help: "Training-set container (`cdc edge compress --split train`).") var container: String?
    @Option(help: "Test-set container (`cdc edge compress --split test`), for the through-the-codec accuracy (with --store: of the upload it was encoded for).") var testContainer: String?
    @Option(help: "The uploaded decoder (safetensors).") var decoder: String?
    @Option(help: "The cloud's store (instead of --container/--decoder).") var store: String?
    @Option(help: "The edge whose uploads to train on (with --store).") var edge: String?
    @Flag(help: "With --store: after training, wait for a clearer upload and train on it too.") var follow = false
    @Option(help: "With --follow: give up waiting after this many seconds.") var followTimeout: Double = 3600
    @Option(help: "Raw test images (IDX directory; default: Debian's Fashion-MNIST) for the raw-test accuracy.") var data: String?
    @Option(help: "resnext-11 or resnext-29.") var model = "resnext-11"
    @Option(help: "Epochs.") var epochs = 10
    @Option(help: "Peak learning rate (SGD, cosine).") var lr: Float = 0.05
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write the trained classifier here (safetensors).") var out: String?

    mutating func run() async throws {
        try engine.apply()
        if let store {
            guard let edge else { throw ValidationError("--store needs --edge NAME") }
            return try await trainFromStore(path: store, edge: edge)
        }
        guard let container, let decoder else { throw ValidationError("give --container and --decoder, or --store and --edge") }
        let decoderBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: decoder)))
        let ae = try EdgeCodec.loadDecoder(decoderBytes)
        let trainC = try LatentContainer.read(from: URL(fileURLWithPath: container))
        guard trainC.decoderHash == ModelIdentity.hash(decoderBytes) else {
            throw ValidationError("\(container) was encoded for another decoder than \(decoder) (model hashes differ)")
        }
        let raw = try ImageDataset.fashionMNIST(train: false, directory: data.map { URL(fileURLWithPath: $0) } ?? ImageDataset.fashionMNISTDirectory)
        let (c, h, w) = (raw.channels, raw.height, raw.width)
        let train = try EdgeCodec.restore(trainC, decoder: ae, channels: c, height: h, width: w)
        log("restored \(train.count) training images; training \(model) for \(epochs) epochs")
        var cfg = ClassifierConfig()
        cfg.model = model; cfg.epochs = epochs; cfg.learningRate = lr; cfg.seed = seed
        var bar: ProgressBar? = nil
        let net = try CloudClassifier.train(train, config: cfg) { epoch, batch, batches, status in
            if batch == 1 { bar = ProgressBar(total: batches, label: "epoch \(epoch)/\(cfg.epochs)") }
            bar?.update(batch, status)
            if batch == batches { bar?.finish() }
        }
        if let testContainer {
            let tc = try LatentContainer.read(from: URL(fileURLWithPath: testContainer))
            guard tc.decoderHash == trainC.decoderHash else { throw ValidationError("the two containers come from different decoders") }
            let test = try EdgeCodec.restore(tc, decoder: ae, channels: c, height: h, width: w)
            print(String(format: "test accuracy through the codec: %.2f%%", 100 * CloudClassifier.accuracy(net, on: test)))
        }
        print(String(format: "test accuracy on raw images: %.2f%%", 100 * CloudClassifier.accuracy(net, on: raw)))
        if let out { try CDCNN.Checkpoint.save(net, to: URL(fileURLWithPath: out), metadata: ["model": model]) }
    }

    /// Trains on the clearest complete upload of `edge` in the store, reporting progress there.
    func trainFromStore(path: String, edge: String) async throws {
        let store = try await SQLiteUploadStore.open(path: path)
        do {
            var trainedMask: Int? = nil
            let deadline = Date().addingTimeInterval(followTimeout)
            while true {
                let uploads = try await store.uploads(edge: edge).filter(\.complete)
                if let best = uploads.min(by: { $0.spec.mask < $1.spec.mask }), trainedMask.map({ best.spec.mask < $0 }) ?? true {
                    try await train(on: best, edge: edge, store: store)
                    trainedMask = best.spec.mask
                    if best.spec.mask == 0 || !follow { break }
                    log("waiting for a clearer upload than m = \(best.spec.mask) …")
                } else if !follow && trainedMask == nil {
                    throw ValidationError("the store holds no complete upload from edge '\(edge)'")
                }
                if Date() > deadline { log("no clearer upload arrived; stopping"); break }
                try await Task.sleep(nanoseconds: 2_000_000_000)
            }
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }

    func train(on upload: UploadStatus, edge: String, store: SQLiteUploadStore) async throws {
        var parts: [LatentContainer] = []
        for i in 0..<upload.spec.partCount {
            guard let bytes = try await store.part(edge: edge, upload: upload.id, index: i) else {
                throw ValidationError("part \(i) of \(upload.id) is missing from the store")
            }
            parts.append(try LatentContainer.decode(bytes))
        }
        guard let decoderBytes = try await store.decoder(edge: edge, upload: upload.id) else {
            throw ValidationError("the decoder of \(upload.id) is missing from the store")
        }
        let all = try LatentContainer.joined(parts)
        guard all.decoderHash == ModelIdentity.hash(decoderBytes) else { throw ValidationError("the stored decoder does not match the codes") }
        let ae = try EdgeCodec.loadDecoder(decoderBytes)
        let registration = try await store.registration(edge: edge)
        let c = registration?.channels ?? 1
        let h = registration?.height ?? 4 * upload.spec.latentShape[1], w = registration?.width ?? 4 * upload.spec.latentShape[2]
        let restored = try EdgeCodec.restore(all, decoder: ae, channels: c, height: h, width: w)
        let (train, validation) = restored.split(validationFraction: 0.1, seed: seed)
        log("edge \(edge), upload \(upload.id): restored \(restored.count) images; training \(model) for \(epochs) epochs (\(validation.count) held out)")
        var cfg = ClassifierConfig()
        cfg.model = model; cfg.epochs = epochs; cfg.learningRate = lr; cfg.seed = seed
        var history: [Double] = []
        let training = try ClassifierTraining(train, config: cfg)
        while training.epoch < cfg.epochs {
            var bar: ProgressBar? = nil
            training.runEpoch { epoch, batch, batches, status in
                if batch == 1 { bar = ProgressBar(total: batches, label: "m=\(upload.spec.mask) epoch \(epoch)/\(cfg.epochs)") }
                bar?.update(batch, status)
                if batch == batches { bar?.finish() }
            }
            let accuracy = Double(CloudClassifier.accuracy(training.model, on: validation))
            _ = training.model.train()
            history.append(accuracy)
            // Converged: the last epoch, or held-out accuracy up by less than 0.2 pp over two epochs.
            let plateau = history.count >= 3 && history[history.count - 1] - history[history.count - 3] < 0.002
            // Written after every epoch: /metrics and the mask policy see it while training goes on.
            try await store.setTraining(edge: edge, TrainingProgress(mask: upload.spec.mask, epoch: training.epoch, epochs: cfg.epochs,
                                                                     accuracy: accuracy, converged: training.epoch == cfg.epochs || plateau))
            log(String(format: "  held-out accuracy after epoch %d: %.2f%%", training.epoch, 100 * accuracy))
        }
        let net = training.model.eval()
        if let testContainer {
            // The deployment figure: test images the edge encoded with this upload's encoder.
            let tc = try LatentContainer.read(from: URL(fileURLWithPath: testContainer))
            if tc.decoderHash == all.decoderHash {
                let test = try EdgeCodec.restore(tc, decoder: ae, channels: c, height: h, width: w)
                print(String(format: "m = %d: test accuracy through the codec %.2f%% (%d images)", upload.spec.mask,
                             100 * CloudClassifier.accuracy(net, on: test), test.count))
            } else {
                log("\(testContainer) was encoded by another encoder than upload \(upload.id): no through-the-codec accuracy for it")
            }
        }
        if let data {
            let raw = try ImageDataset.fashionMNIST(train: false, directory: URL(fileURLWithPath: data))
            print(String(format: "m = %d: test accuracy on raw images %.2f%%", upload.spec.mask, 100 * CloudClassifier.accuracy(net, on: raw)))
        } else if let raw = try? ImageDataset.fashionMNIST(train: false, directory: ImageDataset.fashionMNISTDirectory),
                  raw.channels == c, raw.height == h, raw.width == w {
            print(String(format: "m = %d: test accuracy on raw images %.2f%% (held out, restored: %.2f%%)", upload.spec.mask,
                         100 * CloudClassifier.accuracy(net, on: raw), 100 * (history.last ?? 0)))
        }
        if let out { try CDCNN.Checkpoint.save(net, to: URL(fileURLWithPath: out), metadata: ["model": model, "mask": "\(upload.spec.mask)"]) }
    }
}
