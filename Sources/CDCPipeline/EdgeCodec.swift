import CDCCodec
import CDCData
import CDCModels
import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation

/// The edge's compression of a dataset into an upload (container + decoder) and the
/// cloud's restoration of it.
public enum EdgeCodec {
    /// How the decoder's weights are stored in the uploaded file.
    public enum DecoderPrecision: String, Sendable, CaseIterable {
        /// IEEE binary16, rounded to nearest: half the bytes; the cloud restores with the rounded
        /// weights, which the decoder's hash identifies (the upload default).
        case float16
        /// The weights exactly as trained.
        case float32
    }

    /// The decoder's weights as a safetensors file (names of the decoder `Sequential`:
    /// `0.weight` … `4.bias`), with what the cloud needs to rebuild it in the metadata: the
    /// architecture, the mask, and the image shape (channels; height and width when given), so
    /// that the cloud restores images without being told their size.
    /// Floating-point tensors are stored at `precision`; counters stay I64.
    public static func decoderFile(_ ae: CDCAutoencoder, channels: Int, height: Int? = nil, width: Int? = nil,
                                   precision: DecoderPrecision = .float16) throws -> [UInt8] {
        var tensors = Checkpoint.stateDict(ae.decoder)
        if precision == .float16 {
            for (name, t) in tensors where t.dtype == .f32 {
                tensors[name] = SafetensorsTensor(float16: try t.floats(), shape: t.shape)
            }
        }
        var metadata = ["model": "cdc-ae decoder", "architecture": ae.architecture, "channels": "\(channels)",
                        "mask": "\(ae.quantizer.mask)"]
        if let height, let width { metadata["height"] = "\(height)"; metadata["width"] = "\(width)" }
        return try SafetensorsFile(tensors: tensors, metadata: metadata).encoded()
    }

    /// Rebuilds the decoder from `decoderFile` bytes; returns an autoencoder whose decoder
    /// (and quantizer, for restoring symbols) are ready; its encoder is untrained.
    public static func loadDecoder(_ bytes: [UInt8]) throws -> CDCAutoencoder {
        let file = try SafetensorsFile.decode(bytes)
        guard file.metadata["model"] == "cdc-ae decoder", let c = file.metadata["channels"].flatMap(Int.init),
              let m = file.metadata["mask"].flatMap(Int.init), (0...4).contains(m), c >= 1 else {
            throw PipelineError("not a cdc-ae decoder file (metadata \(file.metadata))")
        }
        // Files written before the architecture was named are the spec's cdc-ae.
        let name = file.metadata["architecture"] ?? ImageAutoencoder.spec.rawValue
        guard let architecture = ImageAutoencoder(rawValue: name) else {
            throw PipelineError("decoder file names an unknown architecture '\(name)' (known: "
                                + ImageAutoencoder.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        let ae = architecture.make(channels: c, mask: m)
        try Checkpoint.load(file.tensors, into: ae.decoder)
        return ae.eval()
    }

    /// The images of `container` restored with the uploaded decoder file `decoderFile`: the
    /// cloud's one call. The container must have been encoded for this decoder (its hash); the
    /// image shape comes from the decoder file (channels, and height × width when it names them)
    /// and the latent shape (4× its spatial size otherwise).
    public static func restore(_ container: LatentContainer, decoderFile: [UInt8]) throws -> ImageDataset {
        guard container.decoderHash == ModelIdentity.hash(decoderFile) else {
            throw PipelineError("the codes were encoded for another decoder than the one given (model hashes differ)")
        }
        let file = try SafetensorsFile.decode(decoderFile)
        let ae = try loadDecoder(decoderFile)
        guard let c = file.metadata["channels"].flatMap(Int.init), container.latentShape.count == 3 else {
            throw PipelineError("the decoder file names no channel count, or the codes are not image latents (shape \(container.latentShape))")
        }
        let h = file.metadata["height"].flatMap(Int.init) ?? 4 * container.latentShape[1]
        let w = file.metadata["width"].flatMap(Int.init) ?? 4 * container.latentShape[2]
        return try restore(container, decoder: ae, channels: c, height: h, width: w)
    }

    /// Encodes every image of `data` (E + quantize, inference mode) into a container.
    public static func compress(_ ae: CDCAutoencoder, _ data: ImageDataset, decoderHash: UInt64,
                                batchSize: Int = 500) throws -> LatentContainer {
        ae.eval()
        defer { ae.train() }
        var symbols: [Int8] = []
        var shape: [Int] = []
        symbols.reserveCapacity(data.count * 16 * (data.height / 4) * (data.width / 4))
        for indices in data.batchIndices(size: batchSize, shuffle: nil) {
            let (x, _) = data.batch(indices)
            let (s, sh) = ae.encode(x)
            symbols += s
            shape = Array(sh.dropFirst())
        }
        return try LatentContainer(mask: ae.quantizer.mask, latentShape: shape, symbols: symbols, labels: data.labels,
                                   classes: data.classes, decoderHash: decoderHash, samplesPerChunk: 1024)
    }

    /// Restores the images of a container with the uploaded decoder (pixels clamped to [0, 1]).
    public static func restore(_ container: LatentContainer, decoder ae: CDCAutoencoder, channels: Int,
                               height: Int, width: Int, batchSize: Int = 500) throws -> ImageDataset {
        guard ae.quantizer.mask == container.mask else {
            throw PipelineError("the decoder was trained for m = \(ae.quantizer.mask), the container holds m = \(container.mask)")
        }
        let per = container.latentShape.reduce(1, *)
        var pixels: [Float] = []
        pixels.reserveCapacity(container.count * channels * height * width)
        var start = 0
        while start < container.count {
            let n = min(batchSize, container.count - start)
            let batch = Array(container.symbols[(start * per)..<((start + n) * per)])
            let x = ae.decode(batch, shape: [n] + container.latentShape)
            guard x.shape == [n, channels, height, width] else {
                throw PipelineError("decoder output \(x.shape) does not match images \(channels)×\(height)×\(width)")
            }
            pixels += x.values.map { min(max($0, 0), 1) }
            start += n
        }
        return ImageDataset(pixels: pixels, labels: container.labels, channels: channels, height: height, width: width,
                            classes: container.classes)
    }
}
