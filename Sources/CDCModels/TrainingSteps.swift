import CDCNN
import CDCTensor

/// Stage 1 of CDC on the edge: the autoencoder and the elementary classifier trained jointly
/// (equations 5 and 6 of the paper). The EC's parameters receive ∇L_C only; the AE's receive
/// ∇(L_A + L_C/α), with L_A the per-element mean squared error. One forward and one backward
/// pass do both: the EC sees x̂ through a gradient-scaling op (value x̂, gradient ×1/α).
public final class EdgeTrainer {
    public let autoencoder: CDCAutoencoder
    public let classifier: Module
    public let aeOptimizer: Optimizer
    public let ecOptimizer: Optimizer
    /// Weight of the classification guidance is 1/α; `guidance = false` trains the plain AE.
    public var alpha: Float
    public var guidance: Bool

    public init(autoencoder: CDCAutoencoder, classifier: Module, alpha: Float = 48, guidance: Bool = true,
                learningRate: Float = 1e-3) {
        self.autoencoder = autoencoder
        self.classifier = classifier
        self.alpha = alpha
        self.guidance = guidance
        aeOptimizer = Adam(autoencoder.parameters(), learningRate: learningRate)
        ecOptimizer = Adam(classifier.parameters(), learningRate: learningRate)
    }

    /// Losses and accuracy of one step.
    public struct StepResult: Sendable {
        public var reconstruction: Float, classification: Float, correct: Int, count: Int
        public init(reconstruction: Float, classification: Float, correct: Int, count: Int) {
            self.reconstruction = reconstruction; self.classification = classification
            self.correct = correct; self.count = count
        }
    }

    /// One training step on a batch; returns L_A, L_C and the EC's correct predictions.
    @discardableResult
    public func step(_ x: Tensor, labels: [Int]) -> StepResult {
        aeOptimizer.zeroGrad(); ecOptimizer.zeroGrad()
        autoencoder.train(); classifier.train()
        let xHat = autoencoder(x)
        let lossA = Tensor.mse(xHat, x)
        // Without guidance the EC still learns on x̂ but sends nothing back to the AE.
        let ecInput = guidance ? xHat.gradientScaled(by: 1 / alpha) : xHat.detach()
        let logits = classifier(ecInput)
        let lossC = Tensor.crossEntropy(logits, labels: labels)
        (lossA + lossC).backward()
        aeOptimizer.step(); ecOptimizer.step()
        let pred = logits.argmaxLastAxis()
        return StepResult(reconstruction: lossA.item, classification: lossC.item,
                          correct: zip(pred, labels).filter { $0 == $1 }.count, count: labels.count)
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

    /// Accuracy of the model in evaluation mode over batches.
    public static func accuracy(_ model: Module, batches: [(Tensor, [Int])]) -> Float {
        model.eval()
        var correct = 0, total = 0
        Autograd.noGrad {
            for (x, y) in batches {
                correct += zip(model(x).argmaxLastAxis(), y).filter { $0 == $1 }.count
                total += y.count
            }
        }
        return total == 0 ? 0 : Float(correct) / Float(total)
    }
}
