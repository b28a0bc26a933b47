import CDCNN
import CDCTensor

/// The reference models of `shared/spec/reference-models.md`, by name.
public enum ReferenceModel: String, CaseIterable, Sendable {
    case cdcAE = "cdc-ae", cdcEC = "cdc-ec", resnext11 = "resnext-11", resnext29 = "resnext-29"
    case cdcAE1D = "cdc-ae-1d", cdcEC1D = "cdc-ec-1d"
    /// The audio cloud classifier (``AudioClassifier/m5(classes:)``).
    case m5 = "m5"

    /// Shape of one input sample for the spec's defaults (1×28×28 images, L = 8000 audio).
    public func sampleShape(audioLength: Int = 8000) -> [Int] {
        switch self {
        case .cdcAE1D, .cdcEC1D, .m5: return [1, audioLength]
        default: return [1, 28, 28]
        }
    }

    /// A freshly initialised model (seed the global generator first for repeatable weights).
    public func make(mask: Int = 4, classes: Int = 10) -> Module {
        switch self {
        case .cdcAE: return CDCAutoencoder.image(mask: mask)
        case .cdcEC: return ElementaryClassifier.image(classes: classes)
        case .resnext11: return ResNeXt.resnext11(classes: classes)
        case .resnext29: return ResNeXt.resnext29(classes: classes)
        case .cdcAE1D: return CDCAutoencoder.audio(mask: mask)
        case .cdcEC1D: return ElementaryClassifier.audio(classes: classes)
        case .m5: return AudioClassifier.m5(classes: classes)
        }
    }

    /// Parameters and forward FLOPs per sample (FLOPs counted as the PyTorch reference does),
    /// plus encoder/decoder FLOPs for the autoencoders.
    public func summary(audioLength: Int = 8000) -> ModelSummary {
        ModelSummary.of(make(), name: rawValue, sampleShape: sampleShape(audioLength: audioLength))
    }
}

/// Size and cost of a model.
public struct ModelSummary: Sendable, Codable {
    public var name: String
    public var parameters: Int
    public var flopsPerSample: Int
    public var encoderFlopsPerSample: Int?
    public var decoderFlopsPerSample: Int?

    /// Parameters and forward FLOPs of `model` on one sample of `sampleShape` (evaluation mode),
    /// plus encoder/decoder FLOPs for an autoencoder.
    public static func of(_ model: Module, name: String, sampleShape: [Int]) -> ModelSummary {
        model.eval()
        let x = Tensor.zeros([1] + sampleShape)
        let flops = FlopCounter.count { _ = model(x) }
        var s = ModelSummary(name: name, parameters: model.parameterCount, flopsPerSample: flops)
        if let ae = model as? CDCAutoencoder {
            s.encoderFlopsPerSample = FlopCounter.count { _ = ae.encoder(x) }
            let z = Autograd.noGrad { ae.encoder(x) }
            s.decoderFlopsPerSample = FlopCounter.count { _ = ae.decoder(z) }
        }
        if let v = model as? VAEClassifier { s.encoderFlopsPerSample = FlopCounter.count { _ = v.encoder(x) } }
        return s
    }
}
