import ArgumentParser
import CDCData
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// `cdc train`: stage 1 of CDC (cdc-ae + cdc-ec, jointly) on Fashion-MNIST or an IDX dataset.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the reference edge models (cdc-ae + cdc-ec) jointly on an image dataset.",
        discussion: "Defaults to Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).")

    @OptionGroup var engine: EngineOptions
    @Option(help: "Directory with the IDX files (train-images-idx3-ubyte[.gz], …).") var data: String?
    @Option(help: "Epochs.") var epochs = 1
    @Option(help: "Use only the first N training images (0 = all).") var subset = 0
    @Option(help: "Batch size.") var batch = 128
    @Option(help: "Quantizer mask m (0…4): 5−m bits per latent.") var mask = 4
    @Option(help: "Guidance weight α (the AE's loss is L_A + L_C/α).") var alpha: Float = 48
    @Flag(help: "Train the plain autoencoder (no classification guidance).") var noGuidance = false
    @Option(help: "Adam learning rate.") var lr: Float = 1e-3
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Write the trained autoencoder here (safetensors).") var saveAE: String?
    @Option(help: "Write the trained classifier here (safetensors).") var saveEC: String?

    mutating func run() throws {
        try engine.apply()
        guard (0...4).contains(mask) else { throw ValidationError("--mask must be in 0…4") }
        guard epochs >= 1, batch >= 2, alpha > 0 else { throw ValidationError("--epochs ≥ 1, --batch ≥ 2 and --alpha > 0 are required") }
        let dir = data.map { URL(fileURLWithPath: $0) } ?? ImageDataset.fashionMNISTDirectory
        var train = try ImageDataset.fashionMNIST(train: true, directory: dir)
        let test = try ImageDataset.fashionMNIST(train: false, directory: dir)
        if subset > 0 { train = train.prefix(subset) }
        guard train.height % 4 == 0, train.width % 4 == 0 else { throw ValidationError("image size must be divisible by 4") }
        log("training cdc-ae (m=\(mask), \(5 - mask) bits/latent) + cdc-ec on \(train.count) images "
            + "\(train.height)×\(train.width), \(epochs) epoch(s), batch \(batch), α=\(alpha)\(noGuidance ? ", no guidance" : ""), "
            + "\(Engine.threads) threads")

        GlobalRandom.seed(seed)
        let ae = CDCAutoencoder.image(channels: train.channels, mask: mask)
        let ec = ElementaryClassifier.image(channels: train.channels, height: train.height, width: train.width, classes: train.classes)
        let trainer = EdgeTrainer(autoencoder: ae, classifier: ec, alpha: alpha, guidance: !noGuidance, learningRate: lr)
        let start = Date()
        var last = EdgeTrainer.StepResult(reconstruction: 0, classification: 0, correct: 0, count: 0)
        for epoch in 1...epochs {
            let batches = train.batches(size: batch, shuffle: seed &+ UInt64(epoch), dropLast: true)
            let bar = ProgressBar(total: batches.count, label: "epoch \(epoch)/\(epochs)")
            var sumA: Float = 0, sumC: Float = 0, correct = 0, seen = 0
            for (i, (x, y)) in batches.enumerated() {
                let r = trainer.step(x, labels: y)
                sumA += r.reconstruction; sumC += r.classification; correct += r.correct; seen += r.count
                bar.update(i + 1, String(format: "L_A %.4f  L_C %.3f  EC acc %.1f%%", sumA / Float(i + 1),
                                         sumC / Float(i + 1), 100 * Float(correct) / Float(seen)))
            }
            bar.finish()
            last = EdgeTrainer.StepResult(reconstruction: sumA / Float(batches.count), classification: sumC / Float(batches.count),
                                          correct: correct, count: seen)
        }
        // Evaluation on the test set, through the codec (the cloud sees x̂).
        ae.eval(); ec.eval()
        var mse: Double = 0, correct = 0, n = 0
        Autograd.noGrad {
            for (x, y) in test.batches(size: 500, shuffle: nil) {
                let xHat = ae(x)
                mse += Double(Tensor.mse(xHat, x).item) * Double(y.count)
                correct += zip(ec(xHat).argmaxLastAxis(), y).filter { $0 == $1 }.count
                n += y.count
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "final training loss: L_A %.4f  L_C %.4f  (EC train accuracy %.2f%%)",
                     last.reconstruction, last.classification, 100 * Double(last.correct) / Double(max(last.count, 1))))
        print(String(format: "test set (%d images, through the codec at %d bits/latent): reconstruction MSE %.4f, EC accuracy %.2f%%",
                     n, 5 - mask, mse / Double(n), 100 * Double(correct) / Double(n)))
        print(String(format: "time: %.1f s", seconds))
        if let saveAE { try Checkpoint.save(ae, to: URL(fileURLWithPath: saveAE), metadata: ["model": "cdc-ae", "mask": "\(mask)"]) }
        if let saveEC { try Checkpoint.save(ec, to: URL(fileURLWithPath: saveEC), metadata: ["model": "cdc-ec"]) }
    }
}

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// A one-line progress bar on standard error.
final class ProgressBar {
    let total: Int, label: String
    let start = Date()
    private var lastDraw = Date.distantPast
    init(total: Int, label: String) { self.total = total; self.label = label }

    func update(_ done: Int, _ status: String) {
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        let width = 24, filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        FileHandle.standardError.write(Data(String(format: "\r%@ %@ %d/%d  %@  %.0fs (eta %.0fs)  ",
                                                   label, bar, done, total, status, elapsed, eta).utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}
