import CDCNN
import CDCTensor
import Foundation

/// The quantizer of the VAE codec (`vae-cls`): L learned scalar centres shared by every latent.
///
/// Each latent value x has a soft assignment `softmax(−σ·(x − cₗ)²)` over the centres (σ, the
/// softness, is 1 as in Mentzer et al.'s imgcomp, which the anchor took its quantizer from) and a
/// hard one, the nearest centre. In use only the hard centre exists; in training the value
/// passed on is `q̄ = q_soft + stopgrad(q_hard − q_soft)`: forward the hard centre, backward the
/// gradient of the soft one `q_soft = Σ softₗ·cₗ`, with respect to x and to the centres.
/// Symbols are the centres' indices 0…L−1 (ties go to the lower index).
public final class CentreQuantizer: Module {
    /// The centres, `[L]`.
    public var centres: Tensor
    /// Number of centres L.
    public let levels: Int
    /// σ of the soft assignment.
    public let softness: Float

    /// L centres drawn uniformly from [−2, 2) with ``GlobalRandom`` (the anchor's initialisation).
    public init(levels: Int, softness: Float = 1) {
        precondition(levels >= 2, "the centre quantizer needs at least 2 centres, got \(levels)")
        self.levels = levels
        self.softness = softness
        centres = GlobalRandom.with { g in Tensor.uniform([levels], low: -2, high: 2, generator: &g, requiresGrad: true) }
    }

    /// What one quantization of a latent tensor gives.
    public struct Quantized {
        /// q̄: the hard centres forward, the soft assignment's gradient backward (shape of the input).
        public let values: Tensor
        /// The straight-through one-hot assignment `[n, L]` (n = the input's element count): one-hot
        /// forward, the soft assignment's gradient backward (what the rate model reads).
        public let assignment: Tensor
        /// The hard symbols, one per element.
        public let symbols: [UInt8]
    }

    /// Quantizes `x` (any shape), keeping the gradient path through the soft assignment.
    public func quantize(_ x: Tensor) -> Quantized {
        let n = x.count, L = levels
        let c = centres.reshape([1, L])
        let soft = ((x.reshape([n, 1]) - c).square() * -softness).logSoftmax().exp()
        let qSoft = (soft * c).sum(axes: [1])
        let symbols = self.symbols(x)
        let cv = centres.values
        let hard = Tensor(symbols.map { cv[Int($0)] }, shape: [n])
        var oneHot = [Float](repeating: 0, count: n * L)
        for i in 0..<n { oneHot[i * L + Int(symbols[i])] = 1 }
        let values = (qSoft + (hard - qSoft).detach()).reshape(x.shape)
        let assignment = soft + (Tensor(oneHot, shape: [n, L]) - soft).detach()
        return Quantized(values: values, assignment: assignment, symbols: symbols)
    }

    /// The hard values (gradient as ``quantize(_:)``).
    public override func forward(_ x: Tensor) -> Tensor { quantize(x).values }

    /// The index of the nearest centre of every element of `x`.
    public func symbols(_ x: Tensor) -> [UInt8] {
        let cv = centres.values, p = x.plain.pointer, n = x.count
        return [UInt8](unsafeUninitializedCapacity: n) { out, initialized in
            for i in 0..<n {
                var best = 0, bestD = Float.infinity
                for (l, c) in cv.enumerated() {
                    let d = (p[i] - c) * (p[i] - c)
                    if d < bestD { bestD = d; best = l }
                }
                out[i] = UInt8(best)
            }
            initialized = n
        }
    }

    /// The centres of `symbols` as a tensor of `shape` (the cloud's dequantization).
    public func restore(_ symbols: [UInt8], shape: [Int]) -> Tensor {
        let cv = centres.values
        return Tensor(symbols.map { cv[Int($0)] }, shape: shape)
    }
}

/// The rate model of `vae-cls` by default: an independent categorical distribution over the L
/// centres for each latent channel (learned logits `[K, L]`), the categorical counterpart of
/// ``FactorizedPrior``. The anchor's 3-D masked context model is the option ``ContextModel3D``.
public final class CategoricalPrior: Module {
    /// Logits of each channel's distribution over the centres, `[K, L]`.
    public var logits: Tensor
    public let channels: Int, levels: Int

    /// A uniform prior.
    public init(channels: Int, levels: Int) {
        self.channels = channels; self.levels = levels
        logits = Tensor([Float](repeating: 0, count: channels * levels), shape: [channels, levels], requiresGrad: true)
    }

    /// Code length in bits of the symbols whose straight-through one-hot `assignment` (`[N·K·P, L]`,
    /// elements in `[N, K, …]` order with P values per channel) ``CentreQuantizer/quantize(_:)``
    /// gave: forward, exactly Σ −log₂ p(symbol); backward, the gradient reaches the encoder
    /// through the soft assignment and the logits directly.
    public func bits(_ assignment: Tensor, perChannel p: Int) -> Tensor {
        let n = assignment.shape[0] / (channels * p)
        precondition(assignment.shape == [n * channels * p, levels], "prior: assignment \(assignment.shape) is not [N·\(channels)·\(p), \(levels)]")
        let logP = logits.logSoftmax().reshape([1, channels, 1, levels])
        return (assignment.reshape([n, channels, p, levels]) * logP).sum() * Float(-1 / Foundation.log(2.0))
    }

    /// Each channel's probabilities over the centres, `[K][L]`.
    public func probabilities() -> [[Double]] {
        let lg = logits.values
        return (0..<channels).map { c in
            let row = (0..<levels).map { Double(lg[c * levels + $0]) }
            let mx = row.max()!, ex = row.map { Foundation.exp($0 - mx) }, s = ex.reduce(0, +)
            return ex.map { $0 / s }
        }
    }
}

/// `vae-cls`: the VAE codec with a classifier on its latents (Chamain, Qi, Ding, IEEE IoT-J 2022),
/// as the project's spec adapts it. The device runs the encoder (cdc-ae's three convolutions,
/// batch norm instead of tanh) and the ``CentreQuantizer``; the server classifies the quantized
/// latent directly — a 3×3 convolution to 128 channels, resnext-11's stage-2 and stage-3 blocks
/// at stride 1, global pooling, a linear layer — and never restores the image. An optional
/// decoder (the anchor's EncClassRec branch, cdc-ae's decoder) restores images from the same
/// latents for a cloud that needs them; it is trained on detached latents, so it does not change
/// the codes. The rate model is the per-channel ``CategoricalPrior`` by default; with
/// ``VAERateModel/context3d`` the anchor's ``ContextModel3D`` sets the rate instead (the prior
/// still fits the codes, so the histogram-coded transport works for both). State names:
/// `encoder.*`, `quantizer.centres`, `prior.logits`, `classifier.*`, `decoder.*`, `context.*`.
public final class VAEClassifier: Module {
    public let encoder: Sequential
    public let quantizer: CentreQuantizer
    public let prior: CategoricalPrior
    public let classifier: Sequential
    public let decoder: Sequential?
    /// The 3-D masked context rate model, when the model was built with it.
    public let context: ContextModel3D?
    /// Latent channels K (16) and the input's channels.
    public let latentChannels: Int, channels: Int, classes: Int
    /// The architecture's name, as files record it.
    public static let architecture = "vae-cls"

    /// A fresh model with `levels` centres (seeded by ``GlobalRandom``).
    public init(channels: Int = 1, classes: Int = 10, levels: Int, latentChannels k: Int = 16, withDecoder: Bool = false,
                rateModel: VAERateModel = .factorized) {
        self.channels = channels; self.classes = classes; latentChannels = k
        encoder = Sequential(Conv2d(channels, 32, kernelSize: 5, stride: 2, padding: 2), LeakyReLU(0.2),
                             Conv2d(32, 64, kernelSize: 5, stride: 2, padding: 2), LeakyReLU(0.2),
                             Conv2d(64, k, kernelSize: 3, stride: 1, padding: 1), BatchNorm2d(k))
        quantizer = CentreQuantizer(levels: levels)
        prior = CategoricalPrior(channels: k, levels: levels)
        classifier = Self.latentClassifier(latentChannels: k, classes: classes)
        decoder = withDecoder
            ? Sequential(ConvTranspose2d(k, 64, kernelSize: 3, stride: 1, padding: 1), LeakyReLU(0.2),
                         ConvTranspose2d(64, 32, kernelSize: 4, stride: 2, padding: 1), LeakyReLU(0.2),
                         ConvTranspose2d(32, channels, kernelSize: 4, stride: 2, padding: 1))
            : nil
        context = rateModel == .context3d ? ContextModel3D(levels: levels) : nil
    }

    /// The exact coder of the context model for latents `[K, h, w]`; nil with the factorized prior.
    public func contextCoder(latentShape s: [Int]) -> ContextSymbolCoder? {
        precondition(s.count == 3, "context coder: latent shape \(s) is not [K, h, w]")
        return context?.coder(centres: quantizer.centres.values, channels: s[0], height: s[1], width: s[2])
    }

    /// The rate model that sets the rate in training.
    public var rateModel: VAERateModel { context == nil ? .factorized : .context3d }

    /// The server's classifier on `[N, K, h, w]` latents (any h, w): conv 3×3 K→128 + BN + ReLU,
    /// resnext-11's stage 2 (128→256) and stage 3 (256→512) blocks at stride 1, global average
    /// pooling, linear. The cloud trains a fresh one of these on uploaded latents.
    public static func latentClassifier(latentChannels k: Int = 16, classes: Int = 10) -> Sequential {
        Sequential(Conv2d(k, 128, kernelSize: 3, padding: 1, bias: false), BatchNorm2d(128), ReLU(),
                   ResNeXtBlock(inChannels: 128, inner: 64, outChannels: 256, stride: 1, groups: 8),
                   ResNeXtBlock(inChannels: 256, inner: 128, outChannels: 512, stride: 1, groups: 8),
                   GlobalAvgPool(), Flatten(), Linear(512, classes))
    }

    /// Class scores of images (hard latents; the gradient as ``CentreQuantizer``'s).
    public override func forward(_ x: Tensor) -> Tensor { classifier(quantizer(encoder(x))) }

    /// Device side: images → centre indices (`[N, K, h, w]` in `shape`), inference mode.
    public func encode(_ x: Tensor) -> (symbols: [UInt8], shape: [Int]) {
        Autograd.noGrad {
            let wasTraining = training
            encoder.eval()
            defer { encoder.train(wasTraining) }
            let z = encoder(x)
            return (quantizer.symbols(z), z.shape)
        }
    }

    /// Server side: centre indices → class scores, inference mode.
    public func classify(_ symbols: [UInt8], shape: [Int]) -> Tensor {
        Autograd.noGrad {
            let wasTraining = training
            classifier.eval()
            defer { classifier.train(wasTraining) }
            return classifier(quantizer.restore(symbols, shape: shape))
        }
    }

    /// The rate penalty `β·max(R − target, 0)`, R and target in bits per input pixel: zero below
    /// the target, β per bit per pixel above it.
    public static func ratePenalty(_ bitsPerPixel: Tensor, target: Float, weight: Float) -> Tensor {
        (bitsPerPixel - target).relu() * weight
    }
}

/// Which model sets the rate of `vae-cls` in training (and which coder codes its samples).
public enum VAERateModel: String, Codable, Sendable, CaseIterable {
    /// A learned categorical distribution per latent channel (``CategoricalPrior``), coded with
    /// per-channel rANS tables: the default.
    case factorized
    /// The anchor's 3-D masked context model (``ContextModel3D``), coded symbol by symbol with
    /// adaptive rANS.
    case context3d

    /// The system's name in rows, keys and directories: `vae-cls` or `vae-cls-ctx3d`.
    public var systemName: String { self == .factorized ? "vae-cls" : "vae-cls-ctx3d" }
}

/// Joint training of `vae-cls` (encoder, quantizer, rate model, classifier) under a rate
/// constraint: loss = cross-entropy + β·max(R − R_target, 0), R the code length of the batch's
/// hard symbols under the rate model (the prior, or the context model) in bits per input pixel. SGD (momentum 0.9,
/// weight decay 5e-4, the caller's schedule) moves the encoder and the classifier; Adam moves the
/// centres and the rate model at a fixed ratio to the SGD learning rate. With a decoder, it learns
/// MSE reconstruction from the detached latents with its own Adam.
public final class VAEClassifierTrainer {
    public let model: VAEClassifier
    public let sgd: SGD
    public let centreOptimizer: Adam, priorOptimizer: Adam
    public let decoderOptimizer: Adam?
    /// The context model's optimizer (at the prior's ratio), with one.
    public let contextOptimizer: Adam?
    /// β and R_target (bits per input pixel).
    public var rateWeight: Float, rateTarget: Float
    /// Adam's learning rates for the centres and for the prior as multiples of SGD's.
    public let centreRatio: Float, priorRatio: Float

    /// A trainer; `learningRate` is SGD's initial rate (change ``sgd``'s `learningRate` to schedule it).
    public init(model: VAEClassifier, learningRate: Float = 0.05, weightDecay: Float = 5e-4, rateWeight: Float = 2,
                rateTarget: Float, centreRatio: Float = 0.02, priorRatio: Float = 0.2) {
        self.model = model
        self.rateWeight = rateWeight; self.rateTarget = rateTarget
        self.centreRatio = centreRatio; self.priorRatio = priorRatio
        sgd = SGD(model.encoder.parameters() + model.classifier.parameters(), learningRate: learningRate, momentum: 0.9,
                  weightDecay: weightDecay)
        centreOptimizer = Adam(model.quantizer.parameters(), learningRate: learningRate * centreRatio)
        priorOptimizer = Adam(model.prior.parameters(), learningRate: learningRate * priorRatio)
        decoderOptimizer = model.decoder.map { Adam($0.parameters(), learningRate: 1e-3) }
        contextOptimizer = model.context.map { Adam($0.parameters(), learningRate: learningRate * priorRatio) }
    }

    /// Losses and accuracy of one step.
    public struct StepResult: Sendable {
        /// Cross-entropy, rate (bits per input pixel of the hard symbols), reconstruction MSE (0 without a decoder).
        public var classification: Float, rate: Float, reconstruction: Float
        public var correct: Int, count: Int
    }

    /// Sets SGD's learning rate and Adam's at their ratios.
    public func setLearningRate(_ lr: Float) {
        sgd.learningRate = lr
        centreOptimizer.learningRate = lr * centreRatio
        priorOptimizer.learningRate = lr * priorRatio
        contextOptimizer?.learningRate = lr * priorRatio
    }

    /// One training step on a batch of images.
    @discardableResult
    public func step(_ x: Tensor, labels: [Int]) -> StepResult {
        sgd.zeroGrad(); centreOptimizer.zeroGrad(); priorOptimizer.zeroGrad(); decoderOptimizer?.zeroGrad()
        contextOptimizer?.zeroGrad()
        model.train()
        let z = model.encoder(x)
        let q = model.quantizer.quantize(z)
        let logits = model.classifier(q.values)
        let ce = Tensor.crossEntropy(logits, labels: labels)
        let pixels = Float(x.count / x.shape[1])
        let perChannel = z.count / (z.shape[0] * z.shape[1])
        // The rate models always fit the codes (through the detached assignment and values only
        // their own parameters move); the penalty pushes the encoder towards cheap symbols once R
        // is above the target.
        var loss = ce + model.prior.bits(q.assignment.detach(), perChannel: perChannel) * (1 / pixels)
        let rate: Float
        if let context = model.context {
            // The context model's fit runs on detached inputs and its value is R itself. Only
            // above the target has the penalty a gradient, so only then does a second pass carry
            // it through the undetached inputs to the encoder (below it, it would add zero).
            let fit = context.bits(q.assignment.detach(), values: q.values.detach()) * (1 / pixels)
            rate = fit.item
            loss = loss + fit
            if rate > rateTarget {
                let bpp = context.bits(q.assignment, values: q.values) * (1 / pixels)
                loss = loss + VAEClassifier.ratePenalty(bpp, target: rateTarget, weight: rateWeight)
            }
        } else {
            let bpp = model.prior.bits(q.assignment, perChannel: perChannel) * (1 / pixels)
            rate = bpp.item
            loss = loss + VAEClassifier.ratePenalty(bpp, target: rateTarget, weight: rateWeight)
        }
        var mse: Float = 0
        if let decoder = model.decoder {
            let r = Tensor.mse(decoder(q.values.detach()), x)
            mse = r.item
            loss = loss + r
        }
        loss.backward()
        sgd.step(); centreOptimizer.step(); priorOptimizer.step(); decoderOptimizer?.step(); contextOptimizer?.step()
        let pred = logits.argmaxLastAxis()
        return StepResult(classification: ce.item, rate: rate, reconstruction: mse,
                          correct: zip(pred, labels).filter { $0 == $1 }.count, count: labels.count)
    }
}
