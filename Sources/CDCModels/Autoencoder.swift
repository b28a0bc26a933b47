import CDCNN
import CDCTensor

/// The CDC autoencoder: encoder E → quantizer Q → decoder D; `forward(x) = D(Q(E(x)))`.
/// State names as PyTorch's (`encoder.0.weight`, …, `decoder.4.bias`).
public final class CDCAutoencoder: Module {
    public let encoder: Sequential
    public let quantizer: Quantizer
    public let decoder: Sequential
    /// The architecture's name (`cdc-ae`, `cdc-ae-wide`, `cdc-ae-1d`): what a decoder file
    /// names so that the cloud rebuilds the same layers.
    public let architecture: String

    public init(encoder: Sequential, decoder: Sequential, mask: Int, architecture: String = "cdc-ae") {
        self.encoder = encoder
        self.quantizer = Quantizer(mask: mask)
        self.decoder = decoder
        self.architecture = architecture
    }

    public override func forward(_ x: Tensor) -> Tensor { decoder(quantizer(encoder(x))) }

    /// Edge side at inference: data → integer symbols (K × H/4 × W/4 per image).
    public func encode(_ x: Tensor) -> (symbols: [Int8], shape: [Int]) {
        Autograd.noGrad {
            let z = encoder(x)
            return (quantizer.symbols(z), z.shape)
        }
    }

    /// Cloud side: symbols → restored data.
    public func decode(_ symbols: [Int8], shape: [Int]) -> Tensor {
        Autograd.noGrad { decoder(quantizer.restore(symbols, shape: shape)) }
    }
}

/// LeakyReLU with the spec's slope 0.2.
func lrelu() -> LeakyReLU { LeakyReLU(0.2) }

extension CDCAutoencoder {
    /// `cdc-ae`: C×H×W → K×H/4×W/4 latent → C×H×W.
    public static func image(channels: Int = 1, mask: Int = 4, latentChannels k: Int = 16) -> CDCAutoencoder {
        CDCAutoencoder(
            encoder: Sequential(Conv2d(channels, 32, kernelSize: 5, stride: 2, padding: 2), lrelu(),
                                Conv2d(32, 64, kernelSize: 5, stride: 2, padding: 2), lrelu(),
                                Conv2d(64, k, kernelSize: 3, stride: 1, padding: 1), Tanh()),
            decoder: Sequential(ConvTranspose2d(k, 64, kernelSize: 3, stride: 1, padding: 1), lrelu(),
                                ConvTranspose2d(64, 32, kernelSize: 4, stride: 2, padding: 1), lrelu(),
                                ConvTranspose2d(32, channels, kernelSize: 4, stride: 2, padding: 1)),
            mask: mask)
    }

    /// `cdc-ae-wide` (not in the spec; swift-cdc's own): the same latent (K×H/4×W/4, so the same
    /// quantizer, rates and containers) with twice the channels and one more 3×3 layer at the
    /// latent's resolution on each side; about 6× the spec model's FLOPs. `cdc-ae`'s small
    /// decoder caps the reconstruction quality at any rate (fixed-length m = 0, 5 bpp, restores
    /// data a classifier is no more accurate on than JPEG's at 2 bpp); this one is for high rates
    /// (coded at 1.7 bpp it beats JPEG and WebP at 2 bpp on Fashion-MNIST; see the README).
    public static func imageWide(channels: Int = 1, mask: Int = 4, latentChannels k: Int = 16) -> CDCAutoencoder {
        CDCAutoencoder(
            encoder: Sequential(Conv2d(channels, 64, kernelSize: 5, stride: 2, padding: 2), lrelu(),
                                Conv2d(64, 128, kernelSize: 5, stride: 2, padding: 2), lrelu(),
                                Conv2d(128, 128, kernelSize: 3, stride: 1, padding: 1), lrelu(),
                                Conv2d(128, k, kernelSize: 3, stride: 1, padding: 1), Tanh()),
            decoder: Sequential(ConvTranspose2d(k, 128, kernelSize: 3, stride: 1, padding: 1), lrelu(),
                                ConvTranspose2d(128, 128, kernelSize: 3, stride: 1, padding: 1), lrelu(),
                                ConvTranspose2d(128, 64, kernelSize: 4, stride: 2, padding: 1), lrelu(),
                                ConvTranspose2d(64, channels, kernelSize: 4, stride: 2, padding: 1)),
            mask: mask, architecture: AutoencoderArchitecture.wide.rawValue)
    }

    /// `cdc-ae-1d`: 1×L → K×L/16 latent → 1×L.
    public static func audio(mask: Int = 4, latentChannels k: Int = 16) -> CDCAutoencoder {
        CDCAutoencoder(
            encoder: Sequential(Conv1d(1, 32, kernelSize: 9, stride: 4, padding: 4), lrelu(),
                                Conv1d(32, 64, kernelSize: 9, stride: 4, padding: 4), lrelu(),
                                Conv1d(64, k, kernelSize: 3, stride: 1, padding: 1), Tanh()),
            decoder: Sequential(ConvTranspose1d(k, 64, kernelSize: 3, stride: 1, padding: 1), lrelu(),
                                ConvTranspose1d(64, 32, kernelSize: 8, stride: 4, padding: 2), lrelu(),
                                ConvTranspose1d(32, 1, kernelSize: 8, stride: 4, padding: 2)),
            mask: mask, architecture: AutoencoderArchitecture.audio.rawValue)
    }
}

/// The autoencoder architectures an edge can train, by name (what decoder files name).
public enum AutoencoderArchitecture: String, CaseIterable, Codable, Sendable {
    /// The spec's `cdc-ae` (the paper's lightweight AE; the default for images).
    case spec = "cdc-ae"
    /// `cdc-ae-wide`: same latent, wider and deeper (``CDCAutoencoder/imageWide(channels:mask:latentChannels:)``).
    case wide = "cdc-ae-wide"
    /// The spec's `cdc-ae-1d` for mono audio clips (``CDCAutoencoder/audio(mask:latentChannels:)``).
    case audio = "cdc-ae-1d"

    /// True for the 1-D (audio) architecture.
    public var isAudio: Bool { self == .audio }

    /// A freshly initialised autoencoder of this architecture (`channels` is ignored for audio: mono).
    public func make(channels: Int = 1, mask: Int = 4) -> CDCAutoencoder {
        switch self {
        case .spec: return CDCAutoencoder.image(channels: channels, mask: mask)
        case .wide: return CDCAutoencoder.imageWide(channels: channels, mask: mask)
        case .audio: return CDCAutoencoder.audio(mask: mask)
        }
    }
}

/// The elementary classifiers of the edge.
public enum ElementaryClassifier {
    /// `cdc-ec`: two conv+pool stages and a two-layer MLP (state names `0.weight` … `9.bias`).
    public static func image(channels: Int = 1, height: Int = 28, width: Int = 28, classes: Int = 10) -> Sequential {
        Sequential(Conv2d(channels, 32, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                   Conv2d(32, 64, kernelSize: 3, padding: 1), ReLU(), MaxPool2d(2),
                   Flatten(), Linear(64 * (height / 4) * (width / 4), 128), ReLU(), Linear(128, classes))
    }

    /// `cdc-ec-1d`: two conv+pool(4) stages, global average pool, linear (`0`, `3`, `8`).
    public static func audio(classes: Int = 10) -> Sequential {
        Sequential(Conv1d(1, 16, kernelSize: 9, padding: 4), ReLU(), MaxPool1d(4),
                   Conv1d(16, 32, kernelSize: 9, padding: 4), ReLU(), MaxPool1d(4),
                   GlobalAvgPool(), Flatten(), Linear(32, classes))
    }
}
