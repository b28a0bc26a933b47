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
    /// architecture, the mask, and the sample shape — channels, height and width of images (height
    /// and width when given), or the clip length and sample rate of audio (`sampleRate` given) —
    /// so that the cloud restores the data without being told its shape. The container of the
    /// codes names this file by its hash, so the upload carries the shape and the sample rate.
    /// Floating-point tensors are stored at `precision`; counters stay I64.
    public static func decoderFile(_ ae: CDCAutoencoder, channels: Int, height: Int? = nil, width: Int? = nil,
                                   sampleRate: Int? = nil, precision: DecoderPrecision = .float16) throws -> [UInt8] {
        var tensors = Checkpoint.stateDict(ae.decoder)
        if precision == .float16 {
            for (name, t) in tensors where t.dtype == .f32 {
                tensors[name] = SafetensorsTensor(float16: try t.floats(), shape: t.shape)
            }
        }
        var metadata = ["model": "cdc-ae decoder", "architecture": ae.architecture, "channels": "\(channels)",
                        "mask": "\(ae.quantizer.mask)"]
        if let sampleRate {
            metadata["sample_rate"] = "\(sampleRate)"
            if let width { metadata["length"] = "\(width)" }
        } else if let height, let width {
            metadata["height"] = "\(height)"; metadata["width"] = "\(width)"
        }
        return try SafetensorsFile(tensors: tensors, metadata: metadata).encoded()
    }

    /// The decoder file of a session's autoencoder for data of its geometry.
    public static func decoderFile(_ session: EdgeSession, precision: DecoderPrecision = .float16) throws -> [UInt8] {
        try decoderFile(session.autoencoder, channels: session.channels, height: session.height, width: session.width,
                        sampleRate: session.sampleRate, precision: precision)
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
        let name = file.metadata["architecture"] ?? AutoencoderArchitecture.spec.rawValue
        guard let architecture = AutoencoderArchitecture(rawValue: name) else {
            throw PipelineError("decoder file names an unknown architecture '\(name)' (known: "
                                + AutoencoderArchitecture.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        let ae = architecture.make(channels: c, mask: m)
        try Checkpoint.load(file.tensors, into: ae.decoder)
        return ae.eval()
    }

    /// The samples of `container` restored with the uploaded decoder file `decoderFile`: the
    /// cloud's one call. The container must have been encoded for this decoder (its hash); the
    /// sample shape comes from the decoder file (channels, and height × width when it names them,
    /// or the clip length and sample rate of audio) and the latent shape (4× its spatial size for
    /// images, 16× its length for audio, otherwise).
    ///
    /// A vae-cls latent file in place of the decoder gives the latents themselves
    /// (``VAEClsCodec/latents(_:latentFile:)``): that codec's classifier reads them unrestored.
    public static func restore(_ container: LatentContainer, decoderFile: [UInt8]) throws -> LabelledDataset {
        if VAEClsCodec.isLatentFile(decoderFile) { return try VAEClsCodec.latents(container, latentFile: decoderFile) }
        guard container.decoderHash == ModelIdentity.hash(decoderFile) else {
            throw PipelineError("the codes were encoded for another decoder than the one given (model hashes differ)")
        }
        let file = try SafetensorsFile.decode(decoderFile)
        let ae = try loadDecoder(decoderFile)
        guard let c = file.metadata["channels"].flatMap(Int.init) else {
            throw PipelineError("the decoder file names no channel count")
        }
        if ae.architecture == AutoencoderArchitecture.audio.rawValue {
            guard container.latentShape.count == 2, let rate = file.metadata["sample_rate"].flatMap(Int.init), rate > 0 else {
                throw PipelineError("an audio decoder needs [K, l] latents and a sample rate (latent shape \(container.latentShape), metadata \(file.metadata))")
            }
            let length = file.metadata["length"].flatMap(Int.init) ?? 16 * container.latentShape[1]
            return try restore(container, decoder: ae, channels: 1, height: 1, width: length, sampleRate: rate)
        }
        guard container.latentShape.count == 3 else {
            throw PipelineError("an image decoder needs [K, h, w] latents; the codes have shape \(container.latentShape)")
        }
        let h = file.metadata["height"].flatMap(Int.init) ?? 4 * container.latentShape[1]
        let w = file.metadata["width"].flatMap(Int.init) ?? 4 * container.latentShape[2]
        return try restore(container, decoder: ae, channels: c, height: h, width: w)
    }

    /// Encodes every sample of `data` (E + quantize, inference mode) into a container.
    public static func compress(_ ae: CDCAutoencoder, _ data: LabelledDataset, decoderHash: UInt64,
                                batchSize: Int = 500) throws -> LatentContainer {
        ae.eval()
        defer { ae.train() }
        var symbols: [Int8] = []
        var shape: [Int] = []
        symbols.reserveCapacity(data.count * 16 * max(data.sampleSize / 16, 1))
        for indices in data.batchIndices(size: batchSize, shuffle: nil) {
            let (x, _) = data.batch(indices)
            let (s, sh) = ae.encode(x)
            symbols += s
            shape = Array(sh.dropFirst())
        }
        return try LatentContainer(mask: ae.quantizer.mask, latentShape: shape, symbols: symbols, labels: data.labels,
                                   classes: data.classes, decoderHash: decoderHash, samplesPerChunk: 1024)
    }

    /// Restores the samples of a container with the uploaded decoder: images (pixels clamped to
    /// [0, 1]), or audio clips of `width` samples at `sampleRate` (values clamped to [−1, 1]).
    public static func restore(_ container: LatentContainer, decoder ae: CDCAutoencoder, channels: Int,
                               height: Int, width: Int, sampleRate: Int? = nil, batchSize: Int = 500) throws -> LabelledDataset {
        guard ae.quantizer.mask == container.mask else {
            throw PipelineError("the decoder was trained for m = \(ae.quantizer.mask), the container holds m = \(container.mask)")
        }
        let per = container.latentShape.reduce(1, *)
        let sampleShape = sampleRate == nil ? [channels, height, width] : [1, width]
        let low: Float = sampleRate == nil ? 0 : -1
        var pixels: [Float] = []
        pixels.reserveCapacity(container.count * channels * height * width)
        var start = 0
        while start < container.count {
            let n = min(batchSize, container.count - start)
            let batch = Array(container.symbols[(start * per)..<((start + n) * per)])
            let x = ae.decode(batch, shape: [n] + container.latentShape)
            guard x.shape == [n] + sampleShape else {
                throw PipelineError("decoder output \(x.shape) does not match samples \(sampleShape)")
            }
            pixels += x.values.map { min(max($0, low), 1) }
            start += n
        }
        if let sampleRate {
            return LabelledDataset(audio: pixels, labels: container.labels, length: width, sampleRate: sampleRate,
                                   classes: container.classes)
        }
        return LabelledDataset(pixels: pixels, labels: container.labels, channels: channels, height: height, width: width,
                               classes: container.classes)
    }

    /// Restores a container with a decoder for data shaped like `like` (its geometry and sample rate).
    public static func restore(_ container: LatentContainer, decoder ae: CDCAutoencoder,
                               like data: LabelledDataset) throws -> LabelledDataset {
        try restore(container, decoder: ae, channels: data.channels, height: data.height, width: data.width,
                    sampleRate: data.sampleRate)
    }
}
