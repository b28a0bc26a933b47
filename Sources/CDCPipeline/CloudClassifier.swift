import CDCData
import CDCFileIO
import CDCModels
import CDCNN
import CDCSafetensors
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
    /// nil: train `epochs` epochs on the cosine schedule. A number P: train until the validation
    /// accuracy stops improving — one epoch of warm-up, then a constant learning rate divided by
    /// 10 whenever the validation accuracy has not improved for P epochs, stopping when it has not
    /// improved for P epochs at the third rate (lr/100) or after `epochs` epochs, and keeping the
    /// weights of the best validation epoch (``PlateauSchedule``).
    public var plateauPatience: Int? = nil
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
    ///
    /// With `config.plateauPatience` the run needs `validation` images and trains until their
    /// accuracy stops improving (``PlateauSchedule``); the model returned has the best epoch's
    /// weights. With a `checkpoint` directory the state is saved there after every epoch and a
    /// run that finds one resumes from it (the same configuration and data size, else an error).
    public static func train(_ train: LabelledDataset, config: ClassifierConfig, validation: LabelledDataset? = nil,
                             checkpoint: URL? = nil,
                             progress: ((Int, Int, Int, String) -> Void)? = nil,
                             afterEpoch: ((Int, Module) throws -> Void)? = nil) throws -> Module {
        if config.plateauPatience != nil, (validation?.count ?? 0) == 0 {
            throw PipelineError("training until the validation accuracy stops improving needs validation images")
        }
        let training = try ClassifierTraining(train, config: config)
        if let checkpoint, try training.resume(from: checkpoint) {
            progress?(training.epoch, 0, 0, "resumed after epoch \(training.epoch)")
        }
        while !training.finished {
            training.runEpoch(progress: progress)
            if let validation, let plateau = training.plateau {
                plateau.observe(CloudClassifier.accuracy(training.model, on: validation), model: training.model)
                _ = training.model.train()
                progress?(training.epoch, 0, 0, String(format: "validation %.2f%% (best %.2f%% after epoch %d), learning rate ×%g%@",
                                                       100 * plateau.history.last!, 100 * plateau.best, plateau.bestEpoch,
                                                       plateau.scale, plateau.stopped ? ": stopped" : ""))
            }
            if let afterEpoch {
                try afterEpoch(training.epoch, training.model)
                _ = training.model.train()
            }
            if let checkpoint { try training.save(to: checkpoint) }
        }
        if let plateau = training.plateau, let best = plateau.bestState {
            try Checkpoint.load(best, into: training.model)
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
    /// The plateau schedule when `config.plateauPatience` is set (it then sets the learning rate).
    public let plateau: PlateauSchedule?
    let batchesPerEpoch: Int
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
        plateau = config.plateauPatience.map { PlateauSchedule(patience: max(1, $0)) }
        self.batchesPerEpoch = batchesPerEpoch
        self.config = config
        data = train
    }

    /// Whether training is over: `epochs` run, or the plateau schedule stopped.
    public var finished: Bool { epoch >= config.epochs || (plateau?.stopped ?? false) }

    /// The learning rate of step `step`: the cosine schedule, or one epoch of linear warm-up and
    /// then the plateau schedule's rate.
    func learningRate(at step: Int) -> Float {
        guard let plateau else { return schedule.learningRate(at: step) }
        if step < batchesPerEpoch { return config.learningRate * Float(step + 1) / Float(batchesPerEpoch) }
        return config.learningRate * plateau.scale
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
            optimizer.learningRate = learningRate(at: step)
            let r = trainer.step(x, labels: y)
            step += 1
            loss += r.loss; correct += r.correct; seen += y.count
            progress?(epoch, i + 1, batches.count, String(format: "loss %.3f  acc %.1f%%  lr %.4f", loss / Float(i + 1),
                                                          100 * Float(correct) / Float(seen), optimizer.learningRate))
        }
    }
}

/// "Until the validation accuracy stops improving": the learning rate is divided by 10 whenever
/// the validation accuracy has not improved for `patience` epochs, and training stops when it has
/// not improved for `patience` epochs at the third rate. The best epoch's weights are kept.
public final class PlateauSchedule {
    public let patience: Int
    /// Multiplier of the base learning rate: 1, 0.1, 0.01.
    public private(set) var scale: Float = 1
    public private(set) var decays = 0
    /// Validation accuracy after every epoch so far.
    public private(set) var history: [Float] = []
    public private(set) var best: Float = -1
    public private(set) var bestEpoch = 0
    public private(set) var sinceBest = 0
    public private(set) var stopped = false
    /// The model's state at the best epoch.
    public private(set) var bestState: [String: SafetensorsTensor]? = nil
    static let maxDecays = 2

    init(patience: Int) { self.patience = patience }

    /// Records the validation accuracy of the epoch just finished (and the weights, if best).
    public func observe(_ accuracy: Float, model: Module) {
        history.append(accuracy)
        if accuracy > best {
            best = accuracy; bestEpoch = history.count; sinceBest = 0
            bestState = Checkpoint.stateDict(model)
            return
        }
        sinceBest += 1
        guard sinceBest >= patience else { return }
        if decays < Self.maxDecays { decays += 1; scale /= 10; sinceBest = 0 } else { stopped = true }
    }

    struct Saved: Codable { var scale: Float; var decays: Int; var history: [Float]; var best: Float; var bestEpoch: Int; var sinceBest: Int; var stopped: Bool }
    var saved: Saved { Saved(scale: scale, decays: decays, history: history, best: best, bestEpoch: bestEpoch, sinceBest: sinceBest, stopped: stopped) }
    func restore(_ s: Saved, bestState: [String: SafetensorsTensor]?) {
        (scale, decays, history, best, bestEpoch, sinceBest, stopped) = (s.scale, s.decays, s.history, s.best, s.bestEpoch, s.sinceBest, s.stopped)
        self.bestState = bestState
    }
}

extension ClassifierTraining {
    /// What a checkpoint holds besides the tensors.
    struct CheckpointState: Codable {
        var version = 1
        var config: ClassifierConfig
        var samples: Int
        var epoch: Int, step: Int
        var generator: [UInt64]
        var plateau: PlateauSchedule.Saved?
    }

    /// Saves the state after the epoch just finished into `dir/epoch-N/` and then points
    /// `dir/latest.json` at it (each file written durably; older epochs removed), so that a crash
    /// at any point leaves the last complete epoch to resume from.
    public func save(to dir: URL) throws {
        let fm = FileManager.default
        let name = String(format: "epoch-%04d", epoch)
        let ep = dir.appendingPathComponent(name)
        try? fm.removeItem(at: ep)
        try fm.createDirectory(at: ep, withIntermediateDirectories: true)
        try Checkpoint.save(model, to: ep.appendingPathComponent("model.safetensors"))
        try OptimizerState.save(optimizer, to: ep.appendingPathComponent("optimizer.safetensors"))
        if let best = plateau?.bestState {
            try SafetensorsFile(tensors: best).write(to: ep.appendingPathComponent("best.safetensors"))
        }
        let state = CheckpointState(config: config, samples: data.count, epoch: epoch, step: step, generator: generator.state,
                                    plateau: plateau?.saved)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(try enc.encode(state), to: ep.appendingPathComponent("state.json"))
        try DurableFile.write(Data(name.utf8), to: dir.appendingPathComponent("latest"))
        for old in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] where old.hasPrefix("epoch-") && old != name {
            try? fm.removeItem(at: dir.appendingPathComponent(old))
        }
    }

    /// Loads the state `save(to:)` left in `dir`; false when there is none. A checkpoint of
    /// another configuration or data size is refused.
    public func resume(from dir: URL) throws -> Bool {
        let latest = dir.appendingPathComponent("latest")
        guard let nameData = try? Data(contentsOf: latest), let name = String(data: nameData, encoding: .utf8) else { return false }
        let ep = dir.appendingPathComponent(name.trimmingCharacters(in: .whitespacesAndNewlines))
        let state: CheckpointState
        do { state = try JSONDecoder().decode(CheckpointState.self, from: Data(contentsOf: ep.appendingPathComponent("state.json"))) }
        catch { throw PipelineError("the checkpoint in \(dir.path) is unreadable (\(error)); delete it to start over") }
        guard state.config == config, state.samples == data.count else {
            throw PipelineError("the checkpoint in \(dir.path) is of another training (settings or data size differ); delete it to start over")
        }
        guard let g = SeededGenerator(state: state.generator) else { throw PipelineError("the checkpoint in \(dir.path) is damaged") }
        _ = try Checkpoint.load(into: model, from: ep.appendingPathComponent("model.safetensors"))
        try OptimizerState.load(into: optimizer, from: ep.appendingPathComponent("optimizer.safetensors"))
        if let plateau, let saved = state.plateau {
            let bestURL = ep.appendingPathComponent("best.safetensors")
            let best = FileManager.default.fileExists(atPath: bestURL.path) ? try SafetensorsFile.read(from: bestURL).tensors : nil
            plateau.restore(saved, bestState: best)
        }
        epoch = state.epoch; step = state.step; generator = g
        return true
    }
}
