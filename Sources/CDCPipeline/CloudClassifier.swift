import CDCData
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// Settings of the cloud's classifier training (stage 2).
public struct ClassifierConfig: Codable, Sendable, Equatable {
    /// `auto` (the default: `resnext-11` for images, `m5` for audio, `vae-cls-head` for vae-cls
    /// latents), `resnext-11`, `resnext-29` (the paper's image AC), `m5` (the audio AC) or
    /// `vae-cls-head` (``VAEClassifier/latentClassifier(latentChannels:classes:)``).
    public var model = "auto"
    public var epochs = 10
    public var batchSize = 128
    /// Peak learning rate of SGD (momentum 0.9, Nesterov), cosine decay after a one-epoch warm-up.
    public var learningRate: Float = 0.05
    public var weightDecay: Float = 5e-4
    /// Images: padding (2 pixels) + random crop, no flip (the paper does not flip, and
    /// Fashion-MNIST's shoes all face one way). Audio: a random time shift of up to a tenth of
    /// the clip either way, zero-filled.
    public var augment = true
    public var seed: UInt64 = 0
    public init() {}

    /// The classifier `model` names for `data`: `auto` resolved to `resnext-11` (images), `m5`
    /// (audio) or `vae-cls-head` (vae-cls latents).
    public func modelName(for data: LabelledDataset) -> String {
        guard model == "auto" else { return model }
        if data.latentCodec != nil { return "vae-cls-head" }
        return data.isAudio ? "m5" : "resnext-11"
    }
}

/// Trains and evaluates the cloud's advanced classifier.
public enum CloudClassifier {
    /// A fresh model of `config.model` for the dataset (`auto`: `resnext-11` for images, `m5`
    /// for audio); an image classifier for audio or the other way round is refused.
    public static func make(_ config: ClassifierConfig, for data: LabelledDataset) throws -> Module {
        let name = config.modelName(for: data)
        guard (name == "vae-cls-head") == (data.latentCodec != nil) else {
            throw PipelineError(data.latentCodec != nil
                ? "these samples are \(data.latentCodec!) latents: only vae-cls-head (or --model auto) reads them"
                : "vae-cls-head classifies vae-cls latents, not \(data.isAudio ? "audio clips" : "images")")
        }
        switch name {
        case "vae-cls-head":
            return VAEClassifier.latentClassifier(latentChannels: data.channels, classes: data.classes)
        case "resnext-11", "resnext-29":
            guard !data.isAudio else { throw PipelineError("\(name) classifies images; audio clips need m5 (or --model auto)") }
            return name == "resnext-11" ? ResNeXt.resnext11(channels: data.channels, classes: data.classes)
                                        : ResNeXt.resnext29(channels: data.channels, classes: data.classes)
        case "m5":
            guard data.isAudio else { throw PipelineError("m5 classifies audio clips; images need resnext-11 or resnext-29 (or --model auto)") }
            return AudioClassifier.m5(classes: data.classes)
        default: throw PipelineError("unknown classifier '\(config.model)' (auto, resnext-11, resnext-29, m5 or vae-cls-head)")
        }
    }

    /// Trains a classifier on `train`; `progress(epoch, batch, batches, status)`, and
    /// `afterEpoch(epoch, model)` at the end of every epoch (it may evaluate the model; training
    /// mode is restored after it).
    public static func train(_ train: LabelledDataset, config: ClassifierConfig,
                             progress: ((Int, Int, Int, String) -> Void)? = nil,
                             afterEpoch: ((Int, Module) throws -> Void)? = nil) throws -> Module {
        let training = try ClassifierTraining(train, config: config)
        while training.epoch < config.epochs {
            training.runEpoch(progress: progress)
            if let afterEpoch {
                try afterEpoch(training.epoch, training.model)
                _ = training.model.train()
            }
        }
        training.model.eval()
        return training.model
    }

    /// Top-1 accuracy of `model` on `data` (evaluation mode, nothing recorded, batches of 500 in
    /// order): the project's one accuracy loop. `input` turns each batch of images into what the
    /// model reads (e.g. through an autoencoder); by default the images themselves.
    public static func accuracy(_ model: Module, on data: LabelledDataset, input: (Tensor) -> Tensor = { $0 }) -> Float {
        model.eval()
        var correct = 0
        Autograd.noGrad {
            for indices in data.batchIndices(size: 500, shuffle: nil) {
                let (x, y) = data.batch(indices)
                correct += zip(model(input(x)).argmaxLastAxis(), y).filter { $0 == $1 }.count
            }
        }
        return data.count == 0 ? 0 : Float(correct) / Float(data.count)
    }
}

/// A classifier training in progress, one epoch at a time (so that a caller can do async work,
/// such as reporting progress, between epochs): SGD with Nesterov momentum, a cosine schedule
/// with one epoch of warm-up, and augmentation. ``CloudClassifier/train(_:config:progress:afterEpoch:)``
/// runs it to the end.
public final class ClassifierTraining {
    public let model: Module
    public let config: ClassifierConfig
    /// Epochs finished.
    public private(set) var epoch = 0
    let data: LabelledDataset
    let schedule: CosineSchedule
    let optimizer: SGD
    let trainer: ClassifierTrainer
    var step = 0
    var generator: SeededGenerator
    let augmentation = Augmentation(padding: 2, randomCrop: true, horizontalFlip: false)

    public init(_ train: LabelledDataset, config: ClassifierConfig) throws {
        model = try GlobalRandom.withSeed(config.seed) { try CloudClassifier.make(config, for: train) }
        let batchesPerEpoch = train.count / config.batchSize
        guard batchesPerEpoch > 0 else { throw PipelineError("training set of \(train.count) images is smaller than one batch") }
        let total = batchesPerEpoch * config.epochs
        schedule = CosineSchedule(base: config.learningRate, totalSteps: max(total, 2),
                                  warmupSteps: min(batchesPerEpoch, max(total - 1, 0)))
        optimizer = SGD(model.parameters(), learningRate: config.learningRate, momentum: 0.9, nesterov: true,
                        weightDecay: config.weightDecay)
        trainer = ClassifierTrainer(model: model, optimizer: optimizer)
        generator = SeededGenerator(seed: config.seed &+ 17)
        self.config = config
        data = train
    }

    /// Trains one more epoch; `progress(epoch, batch, batches, status)` after every batch.
    public func runEpoch(progress: ((Int, Int, Int, String) -> Void)? = nil) {
        epoch += 1
        var loss: Float = 0, correct = 0, seen = 0
        // Batches are made one at a time (an epoch of tensors at once would hold the whole set twice).
        let batches = data.batchIndices(size: config.batchSize, shuffle: config.seed &+ UInt64(epoch) &* 104_729, dropLast: true)
        for (i, indices) in batches.enumerated() {
            let (x, y) = data.batch(indices)
            // Latents are not images: no crops of a 7×7 code.
            if config.augment && data.latentCodec == nil {
                if data.isAudio { Augmentation.timeShift(x, maxShift: data.width / 10, generator: &generator) }
                else { augmentation.apply(to: x, generator: &generator) }
            }
            optimizer.learningRate = schedule.learningRate(at: step)
            let r = trainer.step(x, labels: y)
            step += 1
            loss += r.loss; correct += r.correct; seen += y.count
            progress?(epoch, i + 1, batches.count, String(format: "loss %.3f  acc %.1f%%  lr %.4f", loss / Float(i + 1),
                                                          100 * Float(correct) / Float(seen), optimizer.learningRate))
        }
    }
}
