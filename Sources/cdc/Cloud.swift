import ArgumentParser
import CDCCodec
import CDCData
import CDCPipeline
import CDCTensor
import Foundation

/// `cdc cloud …`: stage 2 in the cloud.
struct Cloud: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The cloud: restore uploaded data and train the advanced classifier.",
                                                    subcommands: [CloudTrain.self])
}

/// `cdc cloud train`: restore the training set with the uploaded decoder and train resnext.
struct CloudTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Restore the uploaded training set and train resnext-11/29; evaluate through the codec and on raw test data.")

    @OptionGroup var engine: EngineOptions
    @Option(help: "Training-set container (`cdc edge compress --split train`).") var container: String
    @Option(help: "Test-set container (`cdc edge compress --split test`), for the through-the-codec accuracy.") var testContainer: String?
    @Option(help: "The uploaded decoder (safetensors).") var decoder: String
    @Option(help: "Raw test images (IDX directory; default: Debian's Fashion-MNIST) for the raw-test accuracy.") var data: String?
    @Option(help: "resnext-11 or resnext-29.") var model = "resnext-11"
    @Option(help: "Epochs.") var epochs = 10
    @Option(help: "Peak learning rate (SGD, cosine).") var lr: Float = 0.05
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write the trained classifier here (safetensors).") var out: String?

    mutating func run() throws {
        try engine.apply()
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
}

import CDCNN
