import CDCEntropy
import CDCNN
import CDCTensor
import Foundation

/// A masked 3-D convolution over a latent volume `[N, K, F, H, W]` (K latent channels read as
/// depth, F features per voxel), kernel 2×3×3: the output at (k, h, w) sees the whole 3×3
/// neighbourhood in slice k − 1 and, in slice k, only the voxels before (h, w) in raster order
/// — and (h, w) itself when ``includesCentre`` (mask "B"; without it, mask "A", the first layer
/// of a context model). Decoding slice by slice, row by row, every voxel a layer reads is known.
///
/// Run as one 2-D convolution over `[N·K, 2F, H, W]`, the previous slice's features stacked on
/// the current ones, with the masked weight. Weight `[O, F, 2, 3, 3]` (depth 0 = slice k − 1,
/// as PyTorch's `Conv3d` with padding (1, 1, 1) and the last output slice dropped), bias `[O]`.
public final class MaskedConv3d: Module {
    public var weight: Tensor
    public var bias: Tensor
    public let inChannels: Int, outChannels: Int
    public let includesCentre: Bool
    /// The mask over `[O, 2F, 3, 3]` (a plain array: it is not a parameter).
    private let maskValues: [Float]

    public init(_ inChannels: Int, _ outChannels: Int, includesCentre: Bool) {
        self.inChannels = inChannels; self.outChannels = outChannels; self.includesCentre = includesCentre
        let fanIn = inChannels * 18
        weight = Initialization.uniformFanIn([outChannels, inChannels, 2, 3, 3], fanIn: fanIn)
        bias = Initialization.uniformFanIn([outChannels], fanIn: fanIn)
        var m = [Float](repeating: 0, count: outChannels * 2 * inChannels * 9)
        for o in 0..<outChannels {
            for d in 0..<2 {
                for i in 0..<inChannels {
                    for t in 0..<9 where Self.sees(depth: d, tap: t, centre: includesCentre) {
                        m[((o * 2 + d) * inChannels + i) * 9 + t] = 1
                    }
                }
            }
        }
        maskValues = m
    }

    /// Whether kernel tap `tap` (kh·3 + kw) at depth `depth` (0: slice k − 1, 1: slice k) is live.
    static func sees(depth: Int, tap: Int, centre: Bool) -> Bool {
        depth == 0 || tap < 4 || (centre && tap == 4)
    }

    /// `[N, K, F, H, W]` → `[N, K, O, H, W]`.
    public override func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 5 && x.shape[2] == inChannels, "masked conv 3-D: input \(x.shape) is not [N, K, \(inChannels), H, W]")
        let (n, k, f, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let previous = k > 1 ? Tensor.concat([Tensor.zeros([n, 1, f, h, w]), x.slice(axis: 1, 0..<(k - 1))], axis: 1)
                             : Tensor.zeros(x.shape)
        let input = Tensor.concat([previous, x], axis: 2).reshape([n * k, 2 * f, h, w])
        let masked = weight.permute([0, 2, 1, 3, 4]).reshape([outChannels, 2 * f, 3, 3])
            * Tensor(maskValues, shape: [outChannels, 2 * f, 3, 3])
        let y = Tensor.conv2d(input, weight: masked, bias: bias, padding: (1, 1))
        FlopCounter.add(y.count * 2 * f * 9)
        return y.reshape([n, k, outChannels, h, w])
    }
}

/// The anchor's context rate model (`_Network3D` of Mentzer et al.'s imgcomp, which the VAE
/// codec's authors used): the symbol volume `[K, h, w]` read as a 3-D image, a masked 3-D
/// convolution A (1 → 24, ReLU), one residual block of two masked convolutions B (24 → 24), and
/// a masked convolution B to L logits — the distribution of each symbol given every symbol of
/// the channels before it and the ones before it in its own channel. Its bits are exact: a
/// ``ContextSymbolCoder`` made from it codes each sample with ``AdaptiveRANS``, computing the
/// same distributions on both sides in deterministic scalar arithmetic.
///
/// State names: `conv_a.*`, `res1.*`, `res2.*`, `logits.*`, each `weight` `[O, I, 2, 3, 3]` and `bias`.
public final class ContextModel3D: Module {
    public let convA: MaskedConv3d
    public let res1: MaskedConv3d, res2: MaskedConv3d
    public let logits: MaskedConv3d
    public let levels: Int
    /// Filters of the hidden layers (the anchor's 24).
    public let filters: Int

    public init(levels: Int, filters: Int = 24) {
        self.levels = levels; self.filters = filters
        convA = MaskedConv3d(1, filters, includesCentre: false)
        res1 = MaskedConv3d(filters, filters, includesCentre: true)
        res2 = MaskedConv3d(filters, filters, includesCentre: true)
        logits = MaskedConv3d(filters, levels, includesCentre: true)
    }

    /// Logits `[N·K·h·w, L]` (rows in `[N, K, h, w]` order) of the latent values `[N, K, h, w]`.
    public override func forward(_ values: Tensor) -> Tensor {
        precondition(values.rank == 4, "context model: latent values \(values.shape) are not [N, K, h, w]")
        let s = values.shape
        let a = convA(values.reshape([s[0], s[1], 1, s[2], s[3]])).relu()
        let r = a + res2(res1(a).relu())
        return logits(r).permute([0, 1, 3, 4, 2]).reshape([values.count, levels])
    }

    /// Code length in bits of the symbols whose straight-through one-hot `assignment` (`[n, L]`)
    /// and values q̄ (`[N, K, h, w]`) ``CentreQuantizer/quantize(_:)`` gave: forward Σ −log₂ p;
    /// backward through the assignment, the values (the context) and the weights.
    public func bits(_ assignment: Tensor, values: Tensor) -> Tensor {
        precondition(assignment.shape == [values.count, levels], "context model: assignment \(assignment.shape) is not [\(values.count), \(levels)]")
        return (assignment * forward(values).logSoftmax()).sum() * Float(-1 / Foundation.log(2.0))
    }

    /// The coder of this model for latents of `[channels, height, width]` with these centres.
    public func coder(centres: [Float], channels: Int, height: Int, width: Int) -> ContextSymbolCoder {
        ContextSymbolCoder(layers: [convA, res1, res2, logits].map(ContextSymbolCoder.Layer.init), centres: centres,
                           channels: channels, height: height, width: width)
    }
}

/// Codes one sample's symbols `[K, h, w]` under a ``ContextModel3D`` with ``AdaptiveRANS``: the
/// distribution of each symbol is the model's softmax at that voxel given the voxels before it
/// (channel by channel, row by row). Encoder and decoder evaluate the network voxel by voxel in
/// the same scalar Swift code — fixed summation order, no fused multiply-adds, an exponential made
/// of additions and multiplications — so both compute bit-identical frequency tables from the
/// same weights; nothing depends on oneDNN or the machine's libm.
public struct ContextSymbolCoder: Sendable {
    /// One masked layer flattened for voxel-wise evaluation: its live taps and weights
    /// `[tap][in][out]`.
    struct Layer: Sendable {
        let inputs: Int, outputs: Int
        /// (depth offset −1 or 0, dh, dw) of each live tap.
        let taps: [(dk: Int, dh: Int, dw: Int)]
        let weights: [Float]
        let bias: [Float]

        init(_ conv: MaskedConv3d) {
            inputs = conv.inChannels; outputs = conv.outChannels
            var taps: [(Int, Int, Int)] = [], w: [Float] = []
            let src = conv.weight.values
            for d in 0..<2 {
                for t in 0..<9 where MaskedConv3d.sees(depth: d, tap: t, centre: conv.includesCentre) {
                    taps.append((d - 1, t / 3 - 1, t % 3 - 1))
                    for i in 0..<inputs {
                        for o in 0..<outputs { w.append(src[((o * inputs + i) * 2 + d) * 9 + t]) }
                    }
                }
            }
            self.taps = taps; weights = w; bias = conv.bias.values
        }
    }

    let layers: [Layer]
    /// The centres (symbol i's latent value) and the latent shape.
    public let centres: [Float]
    public let channels: Int, height: Int, width: Int
    public var levels: Int { centres.count }
    public var symbolsPerSample: Int { channels * height * width }

    init(layers: [Layer], centres: [Float], channels: Int, height: Int, width: Int) {
        precondition(layers.count == 4 && layers[3].outputs == centres.count, "context coder: 4 layers ending in \(centres.count) logits")
        self.layers = layers; self.centres = centres
        self.channels = channels; self.height = height; self.width = width
    }

    /// e^x for x ≤ 0 from additions and multiplications only (2^frac by a degree-11 Taylor
    /// polynomial, relative error < 1e-12): the same bits on every IEEE machine.
    static func exp(_ x: Double) -> Double {
        let t = Swift.max(x, -700) * 1.4426950408889634
        let n = t.rounded(.down), f = (t - n) * 0.6931471805599453
        var p = 1.0, term = 1.0
        for k in 1...11 { term = term * f / Double(k); p = p + term }
        return p * Double(sign: .plus, exponent: Int(n), significand: 1)
    }

    /// Runs the model over `samples` samples, each voxel by voxel in decoding order;
    /// `symbol(i, table)` gets voxel i's frequency table (i counted over all the samples) and
    /// returns its symbol (known when encoding, decoded otherwise). The buffers serve every sample:
    /// a voxel reads only voxels of its own sample written before it.
    func run(samples: Int = 1, _ symbol: (Int, UnsafeBufferPointer<UInt32>) throws -> Int) throws {
        let K = channels, H = height, W = width, V = K * H * W, L = levels
        let F = layers[0].outputs
        var values = [Float](repeating: 0, count: V)
        var a = [Float](repeating: 0, count: V * F), b = a, r = a
        var acc = [Float](repeating: 0, count: Swift.max(F, L))
        var probabilities = [Double](repeating: 0, count: L)
        var table = [UInt32](repeating: 0, count: L)
        try values.withUnsafeMutableBufferPointer { vp in
            try a.withUnsafeMutableBufferPointer { ap in
                try b.withUnsafeMutableBufferPointer { bp in
                    try r.withUnsafeMutableBufferPointer { rp in
                        try acc.withUnsafeMutableBufferPointer { accp in
                            for n in 0..<samples {
                                for k in 0..<K {
                                    for h in 0..<H {
                                        for w in 0..<W {
                                            let v = (k * H + h) * W + w
                                            // a = relu(A(values)), b = relu(B1(a)), r = a + B2(b), logits = B3(r)
                                            Self.apply(layers[0], vp.baseAddress!, at: (k, h, w), (K, H, W), into: accp.baseAddress!)
                                            for o in 0..<F { ap[v * F + o] = Swift.max(accp[o], 0) }
                                            Self.apply(layers[1], ap.baseAddress!, at: (k, h, w), (K, H, W), into: accp.baseAddress!)
                                            for o in 0..<F { bp[v * F + o] = Swift.max(accp[o], 0) }
                                            Self.apply(layers[2], bp.baseAddress!, at: (k, h, w), (K, H, W), into: accp.baseAddress!)
                                            for o in 0..<F { rp[v * F + o] = ap[v * F + o] + accp[o] }
                                            Self.apply(layers[3], rp.baseAddress!, at: (k, h, w), (K, H, W), into: accp.baseAddress!)
                                            var m = accp[0]
                                            for l in 1..<L { m = Swift.max(m, accp[l]) }
                                            for l in 0..<L { probabilities[l] = Self.exp(Double(accp[l]) - Double(m)) }
                                            probabilities.withUnsafeBufferPointer { p in
                                                table.withUnsafeMutableBufferPointer { AdaptiveRANS.frequencies(probabilities: p, into: $0) }
                                            }
                                            let s = try table.withUnsafeBufferPointer { try symbol(n * V + v, $0) }
                                            vp[v] = centres[s]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// One layer's outputs at voxel (k, h, w) from `input` (`[K, H, W, inputs]`) into `out`.
    @inline(__always)
    static func apply(_ layer: Layer, _ input: UnsafePointer<Float>, at p: (Int, Int, Int), _ dims: (Int, Int, Int),
                      into out: UnsafeMutablePointer<Float>) {
        let I = layer.inputs, O = layer.outputs
        layer.bias.withUnsafeBufferPointer { bias in
            layer.weights.withUnsafeBufferPointer { wp in
                if O == 24 {
                    // The anchor's width: three 8-lane accumulators kept in registers. Each lane
                    // adds the same products in the same order as the loop below (a multiply,
                    // then an add: no fused multiply-add), so both give the same bits.
                    let b = UnsafeRawPointer(bias.baseAddress!)
                    var a0 = b.loadUnaligned(as: SIMD8<Float>.self)
                    var a1 = b.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                    var a2 = b.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
                    for (t, tap) in layer.taps.enumerated() {
                        let k = p.0 + tap.dk, h = p.1 + tap.dh, w = p.2 + tap.dw
                        guard k >= 0, h >= 0, h < dims.1, w >= 0, w < dims.2 else { continue }
                        let x = input + ((k * dims.1 + h) * dims.2 + w) * I
                        var row = UnsafeRawPointer(wp.baseAddress! + t * I * 24)
                        for i in 0..<I {
                            let xi = SIMD8<Float>(repeating: x[i])
                            a0 = a0 + xi * row.loadUnaligned(as: SIMD8<Float>.self)
                            a1 = a1 + xi * row.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                            a2 = a2 + xi * row.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
                            row += 96
                        }
                    }
                    let o = UnsafeMutableRawPointer(out)
                    o.storeBytes(of: a0, as: SIMD8<Float>.self)
                    o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
                    o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
                    return
                }
                for o in 0..<O { out[o] = bias[o] }
                for (t, tap) in layer.taps.enumerated() {
                    let k = p.0 + tap.dk, h = p.1 + tap.dh, w = p.2 + tap.dw
                    guard k >= 0, h >= 0, h < dims.1, w >= 0, w < dims.2 else { continue }
                    let x = input + ((k * dims.1 + h) * dims.2 + w) * I
                    let wt = wp.baseAddress! + t * I * O
                    for i in 0..<I {
                        let xi = x[i], row = wt + i * O
                        for o in 0..<O { out[o] += xi * row[o] }
                    }
                }
            }
        }
    }

    /// The symbols of one or more samples (``symbolsPerSample`` each, `[K, h, w]` order, back to
    /// back) coded as one stream; each sample's context starts afresh, so a stream of one sample
    /// is what co-inference sends and a stream of many is what a bulk upload sends (the 4-byte
    /// rANS state paid once).
    public func encode(_ symbols: UnsafeBufferPointer<UInt8>) throws -> [UInt8] {
        let per = symbolsPerSample
        guard symbols.count % per == 0 else {
            throw EntropyCodingError.invalidModel("context coder: \(symbols.count) symbols are not whole samples of \(per)")
        }
        let L = levels
        var tables = [UInt32](repeating: 0, count: symbols.count * L)
        try tables.withUnsafeMutableBufferPointer { tp in
            try run(samples: symbols.count / per) { i, table in
                let s = Int(symbols[i])
                guard s < L else { throw EntropyCodingError.symbolOutOfAlphabet(index: i, value: s, alphabetSize: L) }
                for l in 0..<L { tp[i * L + l] = table[l] }
                return s
            }
        }
        return try tables.withUnsafeBufferPointer { try AdaptiveRANS.encode(symbols, tables: $0, alphabetSize: L) }
    }

    /// The symbols of `samples` samples from their stream; a stream that is not exactly their
    /// code throws.
    public func decode(_ bytes: [UInt8], samples: Int = 1) throws -> [UInt8] {
        var decoder = try AdaptiveRANSDecoder(bytes)
        var out = [UInt8](repeating: 0, count: samples * symbolsPerSample)
        try run(samples: samples) { i, table in
            let s = try decoder.decode(table)
            out[i] = UInt8(s)
            return s
        }
        try decoder.finish()
        return out
    }

    /// The symbols of many samples (back to back) coded as streams of `samplesPerStream` samples
    /// each (the last may hold fewer), the streams coded in parallel on the engine's threads.
    public func encode(samples symbols: [UInt8], samplesPerStream: Int) throws -> [[UInt8]] {
        let per = symbolsPerSample
        guard samplesPerStream >= 1, symbols.count % per == 0 else {
            throw EntropyCodingError.invalidModel("context coder: \(symbols.count) symbols are not whole samples of \(per)")
        }
        let samples = symbols.count / per, streams = (samples + samplesPerStream - 1) / samplesPerStream
        return try Self.concurrentMap(streams) { c in
            let range = (c * samplesPerStream * per)..<(Swift.min(samples, (c + 1) * samplesPerStream) * per)
            return try symbols[range].withUnsafeBufferPointer { try encode($0) }
        }
    }

    /// The symbols of `samples` samples from streams of `samplesPerStream` samples each (as
    /// ``encode(samples:samplesPerStream:)`` wrote them), decoded in parallel.
    public func decode(streams: [[UInt8]], samples: Int, samplesPerStream: Int) throws -> [UInt8] {
        guard samplesPerStream >= 1, streams.count == (samples + samplesPerStream - 1) / samplesPerStream else {
            throw EntropyCodingError.invalidModel("context coder: \(streams.count) streams cannot hold \(samples) samples of \(samplesPerStream) per stream")
        }
        return try Self.concurrentMap(streams.count) { c in
            try decode(streams[c], samples: Swift.min(samplesPerStream, samples - c * samplesPerStream))
        }.flatMap { $0 }
    }

    /// `body(i)` for i in 0..<n on the engine's threads (``Engine/threads``), results in order;
    /// the first error is thrown.
    static func concurrentMap<T>(_ n: Int, _ body: (Int) throws -> T) throws -> [T] {
        var results = [Result<T, Error>?](repeating: nil, count: n)
        results.withUnsafeMutableBufferPointer { slots in
            let slots = UncheckedSendable(slots)
            Engine.parallelFor(n, grain: 1) { range in
                for i in range { slots.value[i] = Result { try body(i) } }
            }
        }
        return try results.map { try $0!.get() }
    }

    /// The ideal code length in bits (Σ −log₂ of each symbol's quantized probability) of one sample.
    public func idealBits(_ symbols: UnsafeBufferPointer<UInt8>) throws -> Double {
        guard symbols.count == symbolsPerSample else {
            throw EntropyCodingError.invalidModel("context coder: a sample has \(symbolsPerSample) symbols, not \(symbols.count)")
        }
        var bits = 0.0
        try run { i, table in
            let s = Int(symbols[i])
            guard s < levels else { throw EntropyCodingError.symbolOutOfAlphabet(index: i, value: s, alphabetSize: levels) }
            bits -= Foundation.log2(Double(table[s]) / Double(AdaptiveRANS.total))
            return s
        }
        return bits
    }

    /// Bytes of the model's live float32 weights and biases (what a receiver without the model needs once).
    public var weightBytes: Int { 4 * layers.reduce(0) { $0 + $1.weights.count + $1.bias.count } }
}
