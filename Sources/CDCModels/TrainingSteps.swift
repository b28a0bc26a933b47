import CDCNN
import CDCTensor

/// Stage 1 of CDC on the edge: the autoencoder and the elementary classifier trained jointly
/// (equations 5 and 6 of the paper). The EC's parameters receive ∇L_C only; the AE's receive
/// ∇(L_A + L_C/α), with L_A the per-element mean squared error. One forward and one backward
/// pass do both: the EC sees x̂ through a gradient-scaling op (value x̂, gradient ×1/α).
///
/// With a ``FactorizedPrior`` and a rate weight λ > 0 the AE's loss gains λ·R, R the code length
/// of the latent symbols under the prior in bits per pixel position (R + λ·D in CompressAI's
/// terms, with the weight on the rate side); the prior's parameters have their own Adam.
public final class EdgeTrainer {
    public let autoencoder: CDCAutoencoder
    public let classifier: Module
    public let aeOptimizer: Optimizer
    public let ecOptimizer: Optimizer
    /// Weight of the classification guidance is 1/α; `guidance = false` trains the plain AE.
    public var alpha: Float
    public var guidance: Bool
    /// The learned prior of the rate term, if any, with its own optimizer: its few parameters
    /// must follow the codes faster than the AE's learning rate would move them (the rate's pull
    /// on the encoder is only as strong as the prior is skewed).
    public let prior: FactorizedPrior?
    public let priorOptimizer: Optimizer?
    /// Weight λ of the rate term (bits per pixel position); 0 leaves the rate out of the loss.
    public var rateWeight: Float

    public init(autoencoder: CDCAutoencoder, classifier: Module, alpha: Float, guidance: Bool = true,
                learningRate: Float = 1e-3, prior: FactorizedPrior? = nil, rateWeight: Float = 0,
                priorLearningRate: Float? = nil) {
        self.autoencoder = autoencoder
        self.classifier = classifier
        self.alpha = alpha
        self.guidance = guidance
        self.prior = prior
        self.rateWeight = rateWeight
        aeOptimizer = Adam(autoencoder.parameters(), learningRate: learningRate)
        priorOptimizer = prior.map { Adam($0.parameters(), learningRate: priorLearningRate ?? 10 * learningRate) }
        ecOptimizer = Adam(classifier.parameters(), learningRate: learningRate)
    }

    /// Losses and accuracy of one step.
    public struct StepResult: Sendable {
        public var reconstruction: Float, classification: Float, correct: Int, count: Int
        /// Code length under the prior in bits per pixel position (0 without a prior).
        public var rate: Float = 0
        public init(reconstruction: Float, classification: Float, correct: Int, count: Int, rate: Float = 0) {
            self.reconstruction = reconstruction; self.classification = classification
            self.correct = correct; self.count = count; self.rate = rate
        }
    }

    /// One training step on a batch; returns L_A, L_C and the EC's correct predictions.
    @discardableResult
    public func step(_ x: Tensor, labels: [Int]) -> StepResult {
        aeOptimizer.zeroGrad(); ecOptimizer.zeroGrad(); priorOptimizer?.zeroGrad()
        autoencoder.train(); classifier.train()
        let z = autoencoder.encoder(x)
        let xHat = autoencoder.decoder(autoencoder.quantizer(z))
        let lossA = Tensor.mse(xHat, x)
        // Without guidance the EC still learns on x̂ but sends nothing back to the AE.
        let ecInput = guidance ? xHat.gradientScaled(by: 1 / alpha) : xHat.detach()
        let logits = classifier(ecInput)
        let lossC = Tensor.crossEntropy(logits, labels: labels)
        var loss = lossA + lossC
        var rate: Float = 0
        if let prior {
            // Rate per pixel position (N·H·W of the batch), whatever the number of channels.
            let positions = Float(x.count / x.shape[1])
            // λ > 0: the encoder is pushed towards cheap codes; λ = 0: only the prior fits the codes.
            let bpp = prior.bits(rateWeight > 0 ? z : z.detach(), levels: autoencoder.quantizer.levels) * (1 / positions)
            rate = bpp.item
            loss = loss + (rateWeight > 0 ? bpp * rateWeight : bpp)
        }
        loss.backward()
        aeOptimizer.step(); ecOptimizer.step(); priorOptimizer?.step()
        let pred = logits.argmaxLastAxis()
        return StepResult(reconstruction: lossA.item, classification: lossC.item,
                          correct: zip(pred, labels).filter { $0 == $1 }.count, count: labels.count, rate: rate)
    }
}

/// The cloud's classifier training step: cross-entropy, backward, optimizer update.
public final class ClassifierTrainer {
    public let model: Module
    public let optimizer: Optimizer

    public init(model: Module, optimizer: Optimizer) {
        self.model = model
        self.optimizer = optimizer
    }

    /// SGD with momentum 0.9 (the spec's cloud step).
    public convenience init(model: Module, learningRate: Float = 0.05, momentum: Float = 0.9, weightDecay: Float = 0) {
        self.init(model: model, optimizer: SGD(model.parameters(), learningRate: learningRate, momentum: momentum,
                                               weightDecay: weightDecay))
    }

    /// One step; returns the loss and the number of correct predictions.
    @discardableResult
    public func step(_ x: Tensor, labels: [Int]) -> (loss: Float, correct: Int) {
        optimizer.zeroGrad()
        model.train()
        let logits = model(x)
        let loss = Tensor.crossEntropy(logits, labels: labels)
        loss.backward()
        optimizer.step()
        return (loss.item, zip(logits.argmaxLastAxis(), labels).filter { $0 == $1 }.count)
    }
}
