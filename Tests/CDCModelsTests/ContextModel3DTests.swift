import CDCEntropy
import CDCModels
import CDCNN
import CDCTensor
import Foundation
import Testing

/// The 3-D masked context rate model of `vae-cls`: causality of its masks, its gradients, and
/// its exact coder (bit-identical round trips, code length against the model's estimate).
@Suite struct ContextModel3DTests {
    /// A seeded model over L centres and a random symbol volume `[n, k, h, w]`.
    func setup(levels: Int = 3, shape: [Int] = [2, 3, 4, 5], seed: UInt64 = 7) -> (ContextModel3D, [Float], [UInt8]) {
        GlobalRandom.withSeed(seed) {
            let model = ContextModel3D(levels: levels, filters: 6)
            var g = SeededGenerator(seed: seed)
            let symbols = (0..<shape.reduce(1, *)).map { _ in UInt8(Int(g.next() % UInt64(levels))) }
            let centres = (0..<levels).map { Float($0) - Float(levels - 1) / 2 }
            return (model, centres, symbols)
        }
    }

    func logits(_ m: ContextModel3D, _ values: [Float], _ shape: [Int]) -> [Float] {
        Autograd.noGrad { m(Tensor(values, shape: shape)).values }
    }

    @Test func eachVoxelSeesOnlyTheVoxelsDecodedBeforeIt() {
        let shape = [1, 3, 4, 5], L = 3
        let (m, centres, symbols) = setup(levels: L, shape: shape)
        let values = symbols.map { centres[Int($0)] }
        let base = logits(m, values, shape)
        for v in [0, 7, 19, 20, 33, 59] {
            var changed = values
            changed[v] += 1.5
            let after = logits(m, changed, shape)
            // Voxels up to v (decoding order: channel, row, column) cannot see voxel v.
            #expect(Array(after[0..<((v + 1) * L)]) == Array(base[0..<((v + 1) * L)]), "voxel \(v) leaks backwards")
            if v + 1 < values.count {
                #expect(Array(after[((v + 1) * L)...]) != Array(base[((v + 1) * L)...]), "nothing after voxel \(v) sees it")
            }
        }
    }

    @Test func gradientsMatchFiniteDifferences() {
        let shape = [1, 2, 3, 3], L = 3
        let (m, _, symbols) = setup(levels: L, shape: shape, seed: 3)
        var g = SeededGenerator(seed: 11)
        let xs = (0..<shape.reduce(1, *)).map { _ in Float(Double(g.next() >> 11) / Double(1 << 53) * 2 - 1) }
        var oneHot = [Float](repeating: 0, count: xs.count * L)
        for (i, s) in symbols.prefix(xs.count).enumerated() { oneHot[i * L + Int(s)] = 1 }
        func bits() -> Float { Autograd.noGrad { m.bits(Tensor(oneHot, shape: [xs.count, L]), values: Tensor(xs, shape: shape)).item } }
        let x = Tensor(xs, shape: shape, requiresGrad: true)
        m.zeroGrad()
        m.bits(Tensor(oneHot, shape: [xs.count, L]), values: x).backward()
        // A small step: a larger one crosses the ReLUs' kinks at some biases.
        let h: Float = 2e-3
        func check(_ analytic: Float, _ plus: Float, _ minus: Float, _ what: String) {
            let fd = (plus - minus) / (2 * h)
            #expect(abs(analytic - fd) < 2e-2 + 2e-2 * abs(fd), "\(what): \(analytic) vs \(fd)")
        }
        var probe = xs
        for i in [0, 4, 9, 13, 17] {
            probe[i] = xs[i] + h
            let p = Autograd.noGrad { m.bits(Tensor(oneHot, shape: [xs.count, L]), values: Tensor(probe, shape: shape)).item }
            probe[i] = xs[i] - h
            let q = Autograd.noGrad { m.bits(Tensor(oneHot, shape: [xs.count, L]), values: Tensor(probe, shape: shape)).item }
            probe[i] = xs[i]
            check(x.grad!.values[i], p, q, "value \(i)")
        }
        for (name, w) in m.namedParameters() {
            let grad = w.grad!.values, original = w.values
            for i in stride(from: 0, to: w.count, by: max(1, w.count / 4)) {
                var v = original
                v[i] += h; w.assign(Tensor(v, shape: w.shape)); let p = bits()
                v[i] -= 2 * h; w.assign(Tensor(v, shape: w.shape)); let q = bits()
                w.assign(Tensor(original, shape: w.shape))
                check(grad[i], p, q, "\(name)[\(i)]")
            }
        }
    }

    @Test func maskedWeightsGetNoGradient() {
        let (m, _, _) = setup(levels: 2, shape: [1, 2, 3, 3])
        let x = Tensor((0..<18).map { Float($0 % 5) / 4 - 0.5 }, shape: [1, 2, 3, 3], requiresGrad: true)
        m.zeroGrad()
        m(x).square().sum().backward()
        // Depth 1 (the current slice), taps at and after the centre: the centre lives only in B layers.
        for (conv, firstDead) in [(m.convA, 4), (m.res1, 5), (m.logits, 5)] {
            let g = conv.weight.grad!.values, s = conv.weight.shape
            for o in 0..<s[0] {
                for i in 0..<s[1] {
                    for t in firstDead..<9 { #expect(g[((o * s[1] + i) * 2 + 1) * 9 + t] == 0) }
                }
            }
        }
    }

    @Test func coderRoundTripsAndCostsWhatTheModelSays() throws {
        let shape = [3, 4, 5], L = 3
        let (m, centres, symbols) = setup(levels: L, shape: [2] + shape)
        let coder = m.coder(centres: centres, channels: shape[0], height: shape[1], width: shape[2])
        let per = coder.symbolsPerSample
        let values = symbols.map { centres[Int($0)] }
        let lg = logits(m, values, [2] + shape)
        for s in 0..<2 {
            let sample = Array(symbols[(s * per)..<((s + 1) * per)])
            let bytes = try sample.withUnsafeBufferPointer { try coder.encode($0) }
            #expect(try coder.decode(bytes) == sample)
            // The model's own code length (float softmax of the batched network) and the coder's.
            var modelBits = 0.0
            for v in 0..<per {
                let row = (0..<L).map { Double(lg[(s * per + v) * L + $0]) }
                let mx = row.max()!, lse = mx + log(row.map { exp($0 - mx) }.reduce(0, +))
                modelBits -= (row[Int(sample[v])] - lse) / log(2)
            }
            let ideal = try sample.withUnsafeBufferPointer { try coder.idealBits($0) }
            #expect(abs(ideal - modelBits) < 0.01 * modelBits + 0.5, "coder \(ideal) bits vs model \(modelBits)")
            // rANS overhead: the 4-byte final state and under a byte of renormalization.
            #expect(Double(8 * bytes.count) <= ideal + 40 && Double(8 * bytes.count) >= ideal - 1)
        }
    }

    @Test func corruptCodesAreRefused() throws {
        let (m, centres, symbols) = setup(levels: 2, shape: [1, 3, 4, 4])
        let coder = m.coder(centres: centres, channels: 3, height: 4, width: 4)
        let bytes = try symbols.withUnsafeBufferPointer { try coder.encode($0) }
        #expect(throws: EntropyCodingError.self) { try coder.decode(Array(bytes.dropLast())) }
        #expect(throws: EntropyCodingError.self) { try coder.decode(bytes + [0]) }
        #expect(throws: EntropyCodingError.self) { try coder.decode([1, 2]) }
        #expect(throws: EntropyCodingError.self) { try Array(symbols.dropLast()).withUnsafeBufferPointer { try coder.encode($0) } }
        // Arbitrary bytes: a decode throws or yields symbols of the alphabet, never crashes.
        var g = SeededGenerator(seed: 5)
        for _ in 0..<50 {
            let junk = (0..<Int(g.next() % 12 + 4)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            if let s = try? coder.decode(junk) { #expect(s.allSatisfy { $0 < 2 }) }
        }
    }
}

/// The context coder's bytes are a fixed function of the weights and the symbols: the same on
/// every machine and in every version, or receivers could not decode what senders wrote.
@Suite struct ContextCoderGoldenTests {
    @Test func aSeededModelCodesToTheSameBytesAsEver() throws {
        let model = GlobalRandom.withSeed(17) { ContextModel3D(levels: 3) }   // the anchor's 24 filters
        var g = SeededGenerator(seed: 29)
        let symbols = (0..<(4 * 16 * 7 * 7)).map { _ in UInt8(g.next() % 3) }
        let coder = model.coder(centres: [-1, 0, 1.5], channels: 16, height: 7, width: 7)
        let streams = try coder.encode(samples: symbols, samplesPerStream: 2)
        var hash: UInt64 = 0xcbf29ce484222325   // FNV-1a over every stream's bytes
        for b in streams.joined() { hash = (hash ^ UInt64(b)) &* 0x100000001b3 }
        print("context coder golden:", streams.map(\.count), String(hash, radix: 16))
        #expect(try coder.decode(streams: streams, samples: 4, samplesPerStream: 2) == symbols)
        #expect(streams.map(\.count) == [315, 316] && hash == 0xb2fdc972603416c8)
    }
}
