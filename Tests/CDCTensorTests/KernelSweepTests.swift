import Foundation
import Testing
@testable import CDCTensor

// The oneDNN backend against the reference backend: forward values and every gradient, over
// sweeps of geometries. Error = max |oneDNN − reference| / max |reference| ≤ 1e-4.

// MARK: - Convolution cases

/// One convolution (or transposed convolution) geometry.
struct ConvSweepCase: Sendable, CustomTestStringConvertible {
    var n: Int, c: Int, o: Int, h: Int, w: Int, kh: Int, kw: Int
    var s = (1, 1), p = (0, 0), d = (1, 1), op = (0, 0)
    var g = 1
    var bias = true
    var act: FusedActivation = .none

    var testDescription: String {
        var t = "N\(n) \(c)→\(o) \(h)x\(w) k\(kh)x\(kw) s\(s.0),\(s.1) p\(p.0),\(p.1) d\(d.0),\(d.1)"
        if op != (0, 0) { t += " op\(op.0),\(op.1)" }
        if g > 1 { t += " g\(g)" }
        if !bias { t += " nobias" }
        if act != .none { t += " \(act)" }
        return t
    }

    /// Output size of a plain convolution along one axis.
    static func convOut(_ i: Int, _ k: Int, _ s: Int, _ p: Int, _ d: Int) -> Int { (i + 2 * p - d * (k - 1) - 1) / s + 1 }
    /// Output size of a transposed convolution along one axis.
    static func convTOut(_ i: Int, _ k: Int, _ s: Int, _ p: Int, _ d: Int, _ op: Int) -> Int {
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1
    }

    var convValid: Bool {
        c % g == 0 && o % g == 0 && Self.convOut(h, kh, s.0, p.0, d.0) >= 1 && Self.convOut(w, kw, s.1, p.1, d.1) >= 1
    }
    var convTValid: Bool {
        c % g == 0 && o % g == 0 && op.0 < s.0 && op.1 < s.1
            && Self.convTOut(h, kh, s.0, p.0, d.0, op.0) >= 1 && Self.convTOut(w, kw, s.1, p.1, d.1, op.1) >= 1
    }

    func conv2dInputs(seed: UInt64) -> [Tensor] {
        var t = [TestData.normal([n, c, h, w], seed: seed), TestData.normal([o, c / g, kh, kw], seed: seed + 1)]
        if bias { t.append(TestData.normal([o], seed: seed + 2)) }
        return t
    }
    func convT2dInputs(seed: UInt64) -> [Tensor] {
        var t = [TestData.normal([n, c, h, w], seed: seed), TestData.normal([c, o / g, kh, kw], seed: seed + 1)]
        if bias { t.append(TestData.normal([o], seed: seed + 2)) }
        return t
    }
    func conv1dInputs(seed: UInt64) -> [Tensor] {
        var t = [TestData.normal([n, c, w], seed: seed), TestData.normal([o, c / g, kw], seed: seed + 1)]
        if bias { t.append(TestData.normal([o], seed: seed + 2)) }
        return t
    }
    func convT1dInputs(seed: UInt64) -> [Tensor] {
        var t = [TestData.normal([n, c, w], seed: seed), TestData.normal([c, o / g, kw], seed: seed + 1)]
        if bias { t.append(TestData.normal([o], seed: seed + 2)) }
        return t
    }

    func conv2d(_ t: [Tensor]) -> Tensor {
        Tensor.conv2d(t[0], weight: t[1], bias: bias ? t[2] : nil, stride: s, padding: p, dilation: d, groups: g, activation: act)
    }
    func convT2d(_ t: [Tensor]) -> Tensor {
        Tensor.convTranspose2d(t[0], weight: t[1], bias: bias ? t[2] : nil, stride: s, padding: p, outputPadding: op,
                               dilation: d, groups: g, activation: act)
    }
    func conv1d(_ t: [Tensor]) -> Tensor {
        Tensor.conv1d(t[0], weight: t[1], bias: bias ? t[2] : nil, stride: s.1, padding: p.1, dilation: d.1, groups: g,
                      activation: act)
    }
    func convT1d(_ t: [Tensor]) -> Tensor {
        Tensor.convTranspose1d(t[0], weight: t[1], bias: bias ? t[2] : nil, stride: s.1, padding: p.1, outputPadding: op.1,
                               dilation: d.1, groups: g, activation: act)
    }
}

typealias CS = ConvSweepCase

enum Sweeps {
    /// Stride 1–3 × padding 0–2 × dilation 1–2 on 3→5 channels, 5x7, kernel 3; batch 1 and 3.
    static let conv2dGrid: [CS] = (1...3).flatMap { s in (0...2).flatMap { p in (1...2).map { d in
        CS(n: (s + p + d) % 2 == 0 ? 1 : 3, c: 3, o: 5, h: 5, w: 7, kh: 3, kw: 3, s: (s, s), p: (p, p), d: (d, d),
           bias: (s + p) % 2 == 0)
    } } }

    static let conv2dSpecial: [CS] = [
        // asymmetric strides, paddings, dilations and kernels
        CS(n: 1, c: 3, o: 5, h: 5, w: 7, kh: 3, kw: 2, s: (2, 1), p: (1, 0), d: (1, 2)),
        CS(n: 3, c: 5, o: 3, h: 7, w: 5, kh: 1, kw: 3, s: (3, 2), p: (0, 1)),
        // groups
        CS(n: 2, c: 4, o: 6, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), g: 2),
        CS(n: 1, c: 8, o: 8, h: 5, w: 7, kh: 3, kw: 3, s: (2, 2), p: (1, 1), g: 4),
        CS(n: 1, c: 4, o: 8, h: 6, w: 6, kh: 3, kw: 3, d: (2, 2), g: 4, bias: false),
        CS(n: 1, c: 16, o: 32, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), g: 2),
        CS(n: 3, c: 32, o: 32, h: 4, w: 5, kh: 3, kw: 3, s: (2, 2), p: (1, 1), g: 4),
        // depthwise (groups == channels), with and without a channel multiplier
        CS(n: 2, c: 5, o: 5, h: 5, w: 7, kh: 3, kw: 3, p: (1, 1), g: 5),
        CS(n: 1, c: 16, o: 16, h: 5, w: 7, kh: 3, kw: 3, s: (2, 2), p: (1, 1), g: 16),
        CS(n: 3, c: 17, o: 17, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), g: 17),
        CS(n: 1, c: 32, o: 32, h: 6, w: 7, kh: 3, kw: 3, p: (2, 2), d: (2, 2), g: 32),
        CS(n: 1, c: 16, o: 32, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), g: 16),
        // channel counts that are and are not multiples of 16
        CS(n: 1, c: 3, o: 17, h: 5, w: 7, kh: 3, kw: 3, p: (1, 1)),
        CS(n: 3, c: 17, o: 3, h: 5, w: 7, kh: 3, kw: 3, s: (2, 2)),
        CS(n: 1, c: 16, o: 16, h: 5, w: 7, kh: 3, kw: 3, p: (1, 1)),
        CS(n: 3, c: 16, o: 32, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1)),
        CS(n: 1, c: 32, o: 16, h: 5, w: 7, kh: 3, kw: 3, s: (2, 2), p: (1, 1)),
        CS(n: 1, c: 17, o: 17, h: 5, w: 7, kh: 3, kw: 3, p: (1, 1), bias: false),
        CS(n: 2, c: 5, o: 16, h: 5, w: 7, kh: 3, kw: 3),
        CS(n: 1, c: 32, o: 32, h: 4, w: 4, kh: 3, kw: 3, p: (1, 1)),
        // odd sizes: 1x1 spatial, kernel 1, kernel larger than stride, tall/thin
        CS(n: 3, c: 16, o: 32, h: 1, w: 1, kh: 1, kw: 1),
        CS(n: 2, c: 3, o: 5, h: 1, w: 1, kh: 3, kw: 3, p: (1, 1)),
        CS(n: 1, c: 17, o: 16, h: 5, w: 7, kh: 1, kw: 1, s: (2, 2)),
        CS(n: 1, c: 16, o: 16, h: 1, w: 7, kh: 1, kw: 3, p: (0, 1)),
        CS(n: 3, c: 3, o: 5, h: 9, w: 2, kh: 2, kw: 2),
        // fused activations
        CS(n: 1, c: 16, o: 32, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), act: .relu),
        CS(n: 3, c: 17, o: 16, h: 5, w: 7, kh: 3, kw: 3, s: (2, 2), act: .leakyRelu(0.1)),
        CS(n: 1, c: 4, o: 6, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), g: 2, act: .relu),
        CS(n: 2, c: 16, o: 16, h: 5, w: 5, kh: 3, kw: 3, p: (1, 1), g: 16, act: .leakyRelu(0.2)),
        CS(n: 1, c: 3, o: 5, h: 5, w: 7, kh: 3, kw: 3, d: (2, 2), bias: false, act: .leakyRelu(0.3)),
        CS(n: 2, c: 64, o: 16, h: 7, w: 7, kh: 3, kw: 3, p: (1, 1), act: .tanh),
        CS(n: 2, c: 16, o: 32, h: 6, w: 6, kh: 3, kw: 3, p: (1, 1), g: 8, act: .relu),
    ]

    static let conv2d = (conv2dGrid + conv2dSpecial).filter(\.convValid)

    /// Transposed: stride 1–3 × padding 0–2 × dilation 1–2, output padding stride − 1 or 0.
    static let convT2dGrid: [CS] = (1...3).flatMap { s in (0...2).flatMap { p in (1...2).map { d in
        CS(n: (s + p + d) % 2 == 0 ? 1 : 3, c: 3, o: 5, h: 3, w: 4, kh: 3, kw: 3, s: (s, s), p: (p, p), d: (d, d),
           op: (p + d) % 2 == 0 ? (s - 1, s - 1) : (0, s - 1), bias: (s + p) % 2 == 1)
    } } }

    static let convT2dSpecial: [CS] = [
        CS(n: 1, c: 3, o: 5, h: 3, w: 4, kh: 3, kw: 2, s: (2, 1), p: (1, 0), d: (1, 2), op: (1, 0)),
        CS(n: 2, c: 4, o: 6, h: 3, w: 3, kh: 3, kw: 3, s: (2, 2), p: (1, 1), op: (1, 1), g: 2),
        CS(n: 1, c: 8, o: 8, h: 3, w: 4, kh: 4, kw: 4, s: (2, 2), p: (1, 1), g: 4),
        CS(n: 1, c: 16, o: 32, h: 3, w: 3, kh: 3, kw: 3, s: (2, 2), p: (1, 1), op: (1, 1), g: 2),
        CS(n: 2, c: 5, o: 5, h: 3, w: 4, kh: 3, kw: 3, s: (2, 2), g: 5),
        CS(n: 1, c: 16, o: 16, h: 3, w: 3, kh: 3, kw: 3, p: (1, 1), g: 16),
        CS(n: 3, c: 17, o: 17, h: 2, w: 3, kh: 2, kw: 2, s: (2, 2), g: 17, bias: false),
        CS(n: 1, c: 32, o: 16, h: 3, w: 3, kh: 3, kw: 3, s: (2, 2), p: (1, 1), op: (1, 1)),
        CS(n: 3, c: 16, o: 17, h: 3, w: 4, kh: 3, kw: 3, s: (2, 2), p: (1, 1), op: (1, 0)),
        CS(n: 1, c: 17, o: 3, h: 3, w: 3, kh: 3, kw: 3),
        CS(n: 1, c: 3, o: 16, h: 2, w: 2, kh: 4, kw: 4, s: (2, 2), p: (1, 1)),
        CS(n: 2, c: 32, o: 32, h: 2, w: 2, kh: 3, kw: 3, s: (3, 3), op: (2, 2), g: 4),
        CS(n: 3, c: 16, o: 16, h: 1, w: 1, kh: 1, kw: 1),
        CS(n: 2, c: 3, o: 5, h: 1, w: 1, kh: 3, kw: 3, s: (2, 2)),
        CS(n: 1, c: 16, o: 32, h: 3, w: 3, kh: 3, kw: 3, s: (2, 2), p: (1, 1), op: (1, 1), act: .relu),
        CS(n: 2, c: 17, o: 16, h: 3, w: 4, kh: 2, kw: 2, s: (2, 2), act: .leakyRelu(0.1)),
        CS(n: 2, c: 16, o: 32, h: 4, w: 4, kh: 3, kw: 3, p: (1, 1), act: .tanh),
    ]

    static let convT2d = (convT2dGrid + convT2dSpecial).filter(\.convTValid)

    /// 1-D: stride 1–3 × padding 0–2 × dilation 1–2 on length 9, plus groups and channel counts.
    static let conv1dGrid: [CS] = (1...3).flatMap { s in (0...2).flatMap { p in (1...2).map { d in
        CS(n: (s + p + d) % 2 == 0 ? 1 : 3, c: 3, o: 5, h: 1, w: 9, kh: 1, kw: 3, s: (1, s), p: (0, p), d: (1, d),
           bias: (s + d) % 2 == 0)
    } } }

    static let conv1dSpecial: [CS] = [
        CS(n: 2, c: 4, o: 6, h: 1, w: 8, kh: 1, kw: 3, p: (0, 1), g: 2),
        CS(n: 1, c: 16, o: 16, h: 1, w: 9, kh: 1, kw: 5, p: (0, 2), g: 16),
        CS(n: 3, c: 17, o: 17, h: 1, w: 7, kh: 1, kw: 3, s: (1, 2), g: 17),
        CS(n: 1, c: 16, o: 32, h: 1, w: 9, kh: 1, kw: 3, p: (0, 1)),
        CS(n: 3, c: 32, o: 16, h: 1, w: 8, kh: 1, kw: 4, s: (1, 2), p: (0, 1), g: 4),
        CS(n: 1, c: 17, o: 5, h: 1, w: 1, kh: 1, kw: 1),
        CS(n: 2, c: 5, o: 17, h: 1, w: 7, kh: 1, kw: 7),
        CS(n: 1, c: 16, o: 16, h: 1, w: 9, kh: 1, kw: 3, p: (0, 1), act: .relu),
        CS(n: 3, c: 3, o: 16, h: 1, w: 9, kh: 1, kw: 3, s: (1, 2), act: .leakyRelu(0.2)),
    ]

    static let conv1d = (conv1dGrid + conv1dSpecial).filter(\.convValid)

    static let convT1dGrid: [CS] = (1...3).flatMap { s in (0...2).flatMap { p in (1...2).map { d in
        CS(n: (s + p + d) % 2 == 0 ? 1 : 3, c: 3, o: 5, h: 1, w: 5, kh: 1, kw: 3, s: (1, s), p: (0, p), d: (1, d),
           op: (0, (p + d) % 2 == 0 ? s - 1 : 0), bias: (s + p) % 2 == 1)
    } } }

    static let convT1dSpecial: [CS] = [
        CS(n: 2, c: 4, o: 6, h: 1, w: 4, kh: 1, kw: 4, s: (1, 2), p: (0, 1), g: 2),
        CS(n: 1, c: 16, o: 16, h: 1, w: 5, kh: 1, kw: 3, p: (0, 1), g: 16),
        CS(n: 3, c: 17, o: 17, h: 1, w: 4, kh: 1, kw: 2, s: (1, 2), g: 17),
        CS(n: 1, c: 32, o: 16, h: 1, w: 5, kh: 1, kw: 4, s: (1, 2), p: (0, 1)),
        CS(n: 3, c: 16, o: 32, h: 1, w: 4, kh: 1, kw: 3, s: (1, 3), op: (0, 2), g: 4),
        CS(n: 1, c: 5, o: 17, h: 1, w: 1, kh: 1, kw: 1),
        CS(n: 2, c: 16, o: 16, h: 1, w: 5, kh: 1, kw: 3, s: (1, 2), op: (0, 1), act: .relu),
        CS(n: 1, c: 3, o: 16, h: 1, w: 5, kh: 1, kw: 3, act: .leakyRelu(0.2)),
    ]

    static let convT1d = (convT1dGrid + convT1dSpecial).filter(\.convTValid)
}

@Suite("Kernel sweeps: convolutions, oneDNN vs reference")
struct ConvSweepTests {
    @Test(arguments: Sweeps.conv2d)
    func conv2d(c: ConvSweepCase) {
        expectBackendsAgree("conv2d \(c.testDescription)", c.conv2dInputs(seed: 1)) { c.conv2d($0) }
    }

    @Test(arguments: Sweeps.convT2d)
    func convTranspose2d(c: ConvSweepCase) {
        expectBackendsAgree("convTranspose2d \(c.testDescription)", c.convT2dInputs(seed: 2)) { c.convT2d($0) }
    }

    @Test(arguments: Sweeps.conv1d)
    func conv1d(c: ConvSweepCase) {
        expectBackendsAgree("conv1d \(c.testDescription)", c.conv1dInputs(seed: 3)) { c.conv1d($0) }
    }

    @Test(arguments: Sweeps.convT1d)
    func convTranspose1d(c: ConvSweepCase) {
        expectBackendsAgree("convTranspose1d \(c.testDescription)", c.convT1dInputs(seed: 4)) { c.convT1d($0) }
    }

    /// Only some inputs require grad (oneDNN skips the data or weight backward accordingly).
    @Test(arguments: [[0], [1], [2], [1, 2], [0, 2]])
    func partialGradients(wrt: [Int]) {
        let c = CS(n: 2, c: 16, o: 32, h: 5, w: 5, kh: 3, kw: 3, s: (2, 2), p: (1, 1))
        expectBackendsAgree("conv2d wrt \(wrt)", c.conv2dInputs(seed: 5), wrt: wrt) { c.conv2d($0) }
        let t = CS(n: 1, c: 16, o: 17, h: 3, w: 3, kh: 3, kw: 3, s: (2, 2), p: (1, 1), op: (1, 1))
        expectBackendsAgree("convT2d wrt \(wrt)", t.convT2dInputs(seed: 6), wrt: wrt) { t.convT2d($0) }
    }

    /// The comparison notices a small difference between the backends.
    @Test func comparisonDetectsDifferences() {
        let c = CS(n: 1, c: 3, o: 4, h: 4, w: 4, kh: 3, kw: 3)
        withKnownIssue("a 0.1 % difference in the forward must be caught") {
            expectBackendsAgree("perturbed forward", c.conv2dInputs(seed: 7)) {
                c.conv2d($0) * (Engine.backend == .onednn ? 1.001 : 1)
            }
        }
        withKnownIssue("a gradient routed to the wrong element must be caught") {
            expectBackendsAgree("perturbed gradient", c.conv2dInputs(seed: 8)) { t in
                let y = c.conv2d(t)
                guard Engine.backend == .onednn else { return y }
                return Autograd.noGrad { y.detach() }.withCustomGradient("swap", inputs: [y]) { g in
                    var v = g.values
                    v.swapAt(0, 1)
                    return [Tensor(v, shape: g.shape)]
                }
            }
        }
    }

    /// The grid really covers what it claims.
    @Test func sweepCoverage() {
        let all = Sweeps.conv2d
        #expect(Set(all.map(\.s.0)) == [1, 2, 3] && Set(all.map(\.p.0)) == [0, 1, 2] && Set(all.map(\.d.0)) == [1, 2])
        #expect(Set(all.map(\.g)).isSuperset(of: [1, 2, 4]) && all.contains { $0.g == $0.c && $0.g > 1 })
        #expect(Set(all.map(\.c)).isSuperset(of: [3, 5, 16, 17, 32]) && Set(all.map(\.n)).isSuperset(of: [1, 3]))
        #expect(all.contains { $0.h == 1 && $0.w == 1 } && all.contains { $0.kh == 1 && $0.kw == 1 })
        #expect(Sweeps.convT2d.count >= 30 && Sweeps.conv1d.count >= 25 && Sweeps.convT1d.count >= 24)
        #expect(Set(Sweeps.convT2d.map(\.op.0)).isSuperset(of: [0, 1, 2]))
    }
}

// MARK: - Pooling

struct PoolSweepCase: Sendable, CustomTestStringConvertible {
    enum Kind: String, Sendable, CaseIterable { case max, avgInclude, avgExclude }
    var kind: Kind
    var n: Int, c: Int, h: Int, w: Int
    var k: (Int, Int), s: (Int, Int), p: (Int, Int)
    /// Feed the pool a 1x1 convolution's output (a blocked layout on oneDNN).
    var blocked = false
    var oneD = false

    var testDescription: String {
        "\(kind) \(oneD ? "1-D" : "2-D") N\(n) C\(c) \(h)x\(w) k\(k.0),\(k.1) s\(s.0),\(s.1) p\(p.0),\(p.1)\(blocked ? " blocked" : "")"
    }

    var valid: Bool {
        p.0 * 2 <= k.0 && p.1 * 2 <= k.1 && (h + 2 * p.0 - k.0) >= 0 && (w + 2 * p.1 - k.1) >= 0
    }

    func inputs(seed: UInt64) -> [Tensor] {
        let shape = oneD ? [n, c, w] : [n, c, h, w]
        // Distinct values: no ties for max pooling (either backend may pick any of a tie).
        var t = [TestData.distinct(shape, seed: seed)]
        if blocked { t.append(TestData.normal(oneD ? [c, c, 1] : [c, c, 1, 1], seed: seed + 1)) }
        return t
    }

    func apply(_ t: [Tensor]) -> Tensor {
        var x = t[0]
        if blocked { x = oneD ? Tensor.conv1d(x, weight: t[1]) : Tensor.conv2d(x, weight: t[1]) }
        if oneD {
            switch kind {
            case .max: return x.maxPool1d(kernel: k.1, stride: s.1, padding: p.1)
            case .avgInclude: return x.avgPool1d(kernel: k.1, stride: s.1, padding: p.1, countIncludePad: true)
            case .avgExclude: return x.avgPool1d(kernel: k.1, stride: s.1, padding: p.1, countIncludePad: false)
            }
        }
        switch kind {
        case .max: return x.maxPool2d(kernel: k, stride: s, padding: p)
        case .avgInclude: return x.avgPool2d(kernel: k, stride: s, padding: p, countIncludePad: true)
        case .avgExclude: return x.avgPool2d(kernel: k, stride: s, padding: p, countIncludePad: false)
        }
    }
}

extension Sweeps {
    /// Kernel 2–3 × stride 1–3 × padding 0–1 × {max, avg incl., avg excl.}, odd sizes,
    /// channels 3/16/17, plain and blocked inputs.
    static let pool2d: [PoolSweepCase] = {
        var cases: [PoolSweepCase] = []
        var i = 0
        for k in 2...3 { for s in 1...3 { for p in 0...1 { for kind in PoolSweepCase.Kind.allCases {
            let c = [3, 16, 17][i % 3]
            cases.append(PoolSweepCase(kind: kind, n: i % 2 == 0 ? 1 : 3, c: c, h: 5, w: 7, k: (k, k), s: (s, s), p: (p, p),
                                       blocked: c != 3 && (i / 3) % 2 == 0))
            i += 1
        } } } }
        cases += [
            PoolSweepCase(kind: .max, n: 2, c: 16, h: 5, w: 7, k: (2, 3), s: (1, 2), p: (1, 1), blocked: true),
            PoolSweepCase(kind: .avgExclude, n: 2, c: 17, h: 5, w: 7, k: (3, 2), s: (2, 1), p: (1, 1), blocked: true),
            PoolSweepCase(kind: .avgInclude, n: 1, c: 5, h: 7, w: 5, k: (3, 1), s: (2, 1), p: (1, 0)),
            PoolSweepCase(kind: .max, n: 3, c: 32, h: 2, w: 2, k: (2, 2), s: (2, 2), p: (0, 0), blocked: true),
            PoolSweepCase(kind: .max, n: 1, c: 16, h: 1, w: 1, k: (1, 1), s: (1, 1), p: (0, 0), blocked: true),
            PoolSweepCase(kind: .avgExclude, n: 1, c: 3, h: 1, w: 6, k: (1, 3), s: (1, 3), p: (0, 1)),
        ]
        return cases.filter(\.valid)
    }()

    static let pool1d: [PoolSweepCase] = {
        var cases: [PoolSweepCase] = []
        var i = 0
        for k in 2...3 { for s in 1...3 { for p in 0...1 { for kind in PoolSweepCase.Kind.allCases {
            let c = [3, 16, 17][i % 3]
            cases.append(PoolSweepCase(kind: kind, n: i % 2 == 0 ? 1 : 3, c: c, h: 1, w: 9, k: (1, k), s: (1, s), p: (0, p),
                                       blocked: c != 3 && (i / 3) % 2 == 1, oneD: true))
            i += 1
        } } } }
        return cases.filter(\.valid)
    }()
}

@Suite("Kernel sweeps: pooling, oneDNN vs reference")
struct PoolSweepTests {
    @Test(arguments: Sweeps.pool2d)
    func pool2d(c: PoolSweepCase) {
        expectBackendsAgree("pool \(c.testDescription)", c.inputs(seed: 10)) { c.apply($0) }
    }

    @Test(arguments: Sweeps.pool1d)
    func pool1d(c: PoolSweepCase) {
        expectBackendsAgree("pool \(c.testDescription)", c.inputs(seed: 11)) { c.apply($0) }
    }

    @Test(arguments: [[2, 3, 5, 7], [3, 16, 4, 4], [1, 17, 3, 5], [2, 3, 7], [3, 16, 5], [1, 32, 1, 1]], [false, true])
    func globalAvgPool(shape: [Int], blocked: Bool) {
        let c = shape[1]
        let w = TestData.normal(shape.count == 4 ? [c, c, 1, 1] : [c, c, 1], seed: 12)
        expectBackendsAgree("globalAvgPool \(shape) blocked=\(blocked)", [TestData.normal(shape, seed: 13), w]) {
            let x = !blocked ? $0[0] : (shape.count == 4 ? Tensor.conv2d($0[0], weight: $0[1]) : Tensor.conv1d($0[0], weight: $0[1]))
            return x.globalAvgPool() * (blocked ? 1 : 1)
        }
    }
}

// MARK: - Batch normalisation

struct BNSweepCase: Sendable, CustomTestStringConvertible {
    var shape: [Int]
    var training: Bool
    var fuseReLU: Bool
    /// Feed batch norm a 1x1 convolution's output (blocked on oneDNN); 3-D and 4-D only.
    var blocked: Bool
    var testDescription: String {
        "\(shape) \(training ? "train" : "eval")\(fuseReLU ? " +relu" : "")\(blocked ? " blocked" : "")"
    }

    /// Output, gradients of (x, [conv weight,] scale, shift), and the running statistics after the step.
    func run(_ backend: KernelBackend) -> RunResult {
        let c = shape[1]
        let x0 = TestData.normal(shape, seed: 20, std: 2, mean: 0.5)
        let w0 = TestData.normal(shape.count == 4 ? [c, c, 1, 1] : [c, c, 1], seed: 21)
        let s0 = TestData.uniform([c], seed: 22, low: 0.5, high: 1.5), b0 = TestData.normal([c], seed: 23)
        let rm0 = TestData.normal([c], seed: 24), rv0 = TestData.uniform([c], seed: 25, low: 0.5, high: 2)
        return onBackend(backend) {
            let x = TestData.leaf(x0), w = TestData.leaf(w0), s = TestData.leaf(s0), b = TestData.leaf(b0)
            let rm = rm0.copy(), rv = rv0.copy()
            let input = !blocked ? x : (shape.count == 4 ? Tensor.conv2d(x, weight: w) : Tensor.conv1d(x, weight: w))
            let y = Tensor.batchNorm(input, scale: s, shift: b, runningMean: rm, runningVar: rv, training: training,
                                     momentum: 0.1, fuseReLU: fuseReLU)
            (y * TestData.normal(shape, seed: 26)).sum().backward()
            var grads = [x.grad?.values, s.grad?.values, b.grad?.values]
            if blocked { grads.append(w.grad?.values) }
            return RunResult(output: y.values, outputShape: y.shape, grads: grads, extra: [rm.values, rv.values])
        }
    }
}

extension Sweeps {
    static let batchNorm: [BNSweepCase] = {
        let shapes: [[Int]] = [[4, 3], [5, 17], [3, 16], [2, 5, 7], [3, 16, 5], [2, 17, 4], [2, 3, 5, 7], [2, 16, 3, 3],
                               [1, 32, 2, 3], [3, 17, 2, 2]]
        var cases: [BNSweepCase] = []
        for (i, shape) in shapes.enumerated() {
            for training in [true, false] {
                for fuse in [false, true] {
                    cases.append(BNSweepCase(shape: shape, training: training, fuseReLU: fuse,
                                             blocked: shape.count > 2 && shape[1] >= 16 && (i + (fuse ? 1 : 0)) % 2 == 0))
                }
            }
        }
        return cases
    }()
}

@Suite("Kernel sweeps: batch norm, oneDNN vs reference")
struct BatchNormSweepTests {
    @Test(arguments: Sweeps.batchNorm)
    func batchNorm(c: BNSweepCase) {
        let a = c.run(.onednn), r = c.run(.reference)
        expectRunsAgree(a, r, "batchNorm \(c.testDescription)")
        #expect(a.grads.allSatisfy { $0 != nil }, "every input gets a gradient")
    }
}

// MARK: - Large tensors (oneDNN eltwise/binary path)

/// Elementwise ops on tensors of at least `DNNLElementwise.threshold` elements run on oneDNN
/// primitives (in the input's layout); smaller ones and the reference backend use Swift loops.
@Suite("Kernel sweeps: large elementwise ops, oneDNN vs reference")
struct LargeElementwiseTests {
    enum Layout: String, CaseIterable, Sendable {
        case plain            // [2, 16, 32, 32] row-major
        case blocked16        // outputs of 1x1 convolutions, 16 channels (no padding in the blocks)
        case blocked17        // 17 channels: blocked with padded channels
        var channels: Int { self == .blocked17 ? 17 : 16 }
        var shape: [Int] { [2, channels, 32, 32] }
    }

    enum Op: String, CaseIterable, Sendable {
        case exp, relu, leakyRelu, tanh, sigmoid, addScalar, mulScalar, rsubScalar, neg, add, sub, mul, div, addRelu, square
    }

    /// `op` applied to one or two operands: plain tensors, or the blocked outputs of 1x1 convolutions.
    static func apply(_ op: Op, _ t: [Tensor], layout: Layout) -> Tensor {
        let a = layout == .plain ? t[0] : Tensor.conv2d(t[0], weight: t[2])
        let b = layout == .plain ? t[1] : Tensor.conv2d(t[1], weight: t[3])
        switch op {
        case .exp: return (a * 0.5).exp()
        case .relu: return a.relu()
        case .leakyRelu: return a.leakyRelu(0.1)
        case .tanh: return a.tanh()
        case .sigmoid: return a.sigmoid()
        case .addScalar: return a + 1.5
        case .mulScalar: return a * -2.5
        case .rsubScalar: return 3 - a
        case .neg: return -a
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / (b * b + 1)
        case .addRelu: return Tensor.addRelu(a, b)
        case .square: return a.square()
        }
    }

    static func inputs(_ layout: Layout) -> [Tensor] {
        let c = layout.channels
        return [TestData.normal(layout.shape, seed: 30), TestData.normal(layout.shape, seed: 31),
                TestData.normal([c, c, 1, 1], seed: 32, std: 0.25), TestData.normal([c, c, 1, 1], seed: 33, std: 0.25)]
    }

    @Test(arguments: Op.allCases, Layout.allCases)
    func largeOp(op: Op, layout: Layout) {
        let inputs = Self.inputs(layout)
        #expect(inputs[0].count >= DNNLElementwise.threshold)
        expectBackendsAgree("\(op) \(layout)", inputs, wrt: layout == .plain ? [0, 1] : nil) {
            Self.apply(op, $0, layout: layout)
        }
    }

    /// Blocked and plain operands mixed in one binary op, both orders.
    @Test(arguments: [Layout.blocked16, .blocked17])
    func mixedLayouts(layout: Layout) {
        let inputs = Self.inputs(layout)
        expectBackendsAgree("blocked + plain", inputs) { Tensor.conv2d($0[0], weight: $0[2]) + $0[1] }
        expectBackendsAgree("plain * blocked", inputs) { $0[1] * Tensor.conv2d($0[0], weight: $0[2]) }
        expectBackendsAgree("addRelu(plain, blocked)", inputs) { Tensor.addRelu($0[1], Tensor.conv2d($0[0], weight: $0[2])) }
    }

    /// A fused activation on a large convolution output takes the oneDNN eltwise backward.
    @Test(arguments: [FusedActivation.relu, .leakyRelu(0.2)], [16, 17])
    func largeConvFusedActivation(act: FusedActivation, channels: Int) {
        let c = CS(n: 2, c: channels, o: channels, h: 32, w: 32, kh: 1, kw: 1, act: act)
        expectBackendsAgree("conv 1x1 \(act) on 32x32", c.conv2dInputs(seed: 37)) { c.conv2d($0) }
    }

    /// `addRelu` agrees with `(a + b).relu()` on both sides of the size threshold.
    @Test(arguments: [[4, 5], [2, 16, 32, 32]])
    func addReluMatchesComposition(shape: [Int]) {
        let a = TestData.normal(shape, seed: 38), b = TestData.normal(shape, seed: 39)
        let fused = runWithGradients(.onednn, [a, b]) { Tensor.addRelu($0[0], $0[1]) }
        let composed = runWithGradients(.onednn, [a, b]) { ($0[0] + $0[1]).relu() }
        expectRunsAgree(fused, composed, "addRelu vs (a + b).relu() \(shape)", tolerance: 1e-6)
    }

    /// Buffers of ≥ 256 KiB come back from the pool uninitialised: a second identical step
    /// (reusing the first step's buffers) must give the same results, and both match the reference.
    @Test func pooledBuffersAreReusedSafely() {
        let inputs = [TestData.normal([2, 16, 64, 64], seed: 40), TestData.normal([16, 16, 1, 1], seed: 41, std: 0.3),
                      TestData.uniform([16], seed: 42, low: 0.5, high: 1.5), TestData.normal([16], seed: 43)]
        #expect(inputs[0].count * 4 >= BufferPool.minimumPooled)
        func step(_ t: [Tensor]) -> Tensor {
            let c = Tensor.conv2d(t[0], weight: t[1], activation: .relu)
            let n = Tensor.batchNorm(c + t[0], scale: t[2], shift: t[3], runningMean: .zeros([16]), runningVar: .ones([16]),
                                     training: true)
            return (n.exp() * 0.1 + n.tanh()).maxPool2d(kernel: (2, 2))
        }
        let first = runWithGradients(.onednn, inputs, step)
        let second = runWithGradients(.onednn, inputs, step)
        expectRunsAgree(second, first, "second step vs first", tolerance: 1e-6)
        expectRunsAgree(first, runWithGradients(.reference, inputs, step), "oneDNN vs reference", tolerance: 2e-4)
    }
}

@Suite("Buffer pool")
struct BufferPoolTests {
    @Test func sizeClasses() {
        #expect(BufferPool.sizeClass(256 << 10) == 256 << 10)
        #expect(BufferPool.sizeClass((256 << 10) + 1) == (256 << 10) + (32 << 10))
        for bytes in [262_145, 300_000, 1_000_000, 5_000_001] {
            let c = BufferPool.sizeClass(bytes)
            // Rounded up to a 1/16 step of the next power of two: at most 12.5 % over the request
            // (the doc comment of `sizeClass` says 6.25 %; 262 145 bytes become 294 912).
            #expect(c >= bytes && Double(c) <= Double(bytes) * 1.125 + 4096, "\(bytes) → \(c)")
            #expect(c % 4096 == 0 && BufferPool.sizeClass(c) == c)
        }
    }

    @Test func reuseAndTrim() {
        let pool = BufferPool()
        let (p, cls) = pool.allocate(300_000)
        #expect(cls == BufferPool.sizeClass(300_000) && pool.cachedBytes == 0)
        pool.release(p, pooledBytes: cls)
        #expect(pool.cachedBytes == cls)
        let (q, cls2) = pool.allocate(299_000)      // same size class: the same buffer
        #expect(q == p && cls2 == cls && pool.cachedBytes == 0)
        pool.release(q, pooledBytes: cls2)
        let (small, pooled) = pool.allocate(1000)   // small requests bypass the pool
        #expect(pooled == 0)
        pool.release(small, pooledBytes: 0)
        pool.trim()
        #expect(pool.cachedBytes == 0)
        pool.limitBytes = 0
        let (r, c3) = pool.allocate(400_000)
        pool.release(r, pooledBytes: c3)
        #expect(pool.cachedBytes == 0, "over the limit: freed, not cached")
    }
}

// MARK: - Chains of oneDNN ops (blocked layouts passed between layers)

/// Parameters of the chains: plain tensors, made once.
struct ChainParams {
    static func make() -> [Tensor] {
        [TestData.normal([2, 16, 6, 6], seed: 40),                 // 0 x
         TestData.normal([32, 16, 3, 3], seed: 41, std: 0.1),      // 1 conv1 w
         TestData.normal([32], seed: 42, std: 0.1),                // 2 conv1 b
         TestData.normal([32, 32, 3, 3], seed: 43, std: 0.06),     // 3 conv2 w
         TestData.normal([32], seed: 44, std: 0.1),                // 4 conv2 b
         TestData.uniform([32], seed: 45, low: 0.5, high: 1.5),    // 5 bn scale
         TestData.normal([32], seed: 46, std: 0.1),                // 6 bn shift
         TestData.normal([10, 32 * 3 * 3], seed: 47, std: 0.05),   // 7 linear w
         TestData.normal([10], seed: 48)]                          // 8 linear b
    }
}

@Suite("Kernel sweeps: chained oneDNN ops")
struct ChainTests {
    /// conv(16→32) → relu → conv(32→32) → + residual → batchNorm (train) → maxPool → reshape → linear.
    static func residualChain(_ t: [Tensor], training: Bool, fused: Bool) -> Tensor {
        let h1 = fused ? Tensor.conv2d(t[0], weight: t[1], bias: t[2], padding: (1, 1), activation: .relu)
                       : Tensor.conv2d(t[0], weight: t[1], bias: t[2], padding: (1, 1)).relu()
        let h2 = Tensor.conv2d(h1, weight: t[3], bias: t[4], padding: (1, 1)) + h1
        let n = Tensor.batchNorm(h2, scale: t[5], shift: t[6], runningMean: .zeros([32]), runningVar: .ones([32]),
                                 training: training)
        let p = n.maxPool2d(kernel: (2, 2))
        return Tensor.linear(p.reshape([2, 32 * 3 * 3]), weight: t[7], bias: t[8])
    }

    @Test(arguments: [(true, false), (true, true), (false, false)])
    func residualChainMatchesReference(training: Bool, fused: Bool) {
        let label = "residual chain training=\(training) fused=\(fused)"
        var a = runWithGradients(.onednn, ChainParams.make()) { Self.residualChain($0, training: training, fused: fused) }
        var r = runWithGradients(.reference, ChainParams.make()) { Self.residualChain($0, training: training, fused: fused) }
        if training {
            // A per-channel bias right before training-mode batch norm cancels out: its true
            // gradient is 0, so both backends only hold round-off there. Check that, then skip it.
            let scale = maxAbs(r.grads[2]!)
            #expect(maxAbs(a.grads[4]!) < 1e-3 * scale && maxAbs(r.grads[4]!) < 1e-3 * scale, "\(label): bias before BN")
            a.grads[4] = nil; r.grads[4] = nil
        }
        expectRunsAgree(a, r, label, tolerance: 2e-4)
    }

    /// The chain really passes blocked tensors between oneDNN ops (else it would test nothing new).
    @Test func chainUsesBlockedLayouts() {
        let plain: [Bool] = onBackend(.onednn) {
            let t = ChainParams.make()
            let h1 = Tensor.conv2d(t[0], weight: t[1], bias: t[2], padding: (1, 1))
            let h2 = Tensor.conv2d(h1.relu(), weight: t[3], padding: (1, 1))
            let n = Tensor.batchNorm(h2 + h1, scale: t[5], shift: t[6], runningMean: .zeros([32]), runningVar: .ones([32]),
                                     training: true)
            return [h1.isPlain, h1.relu().isPlain, h2.isPlain, (h2 + h1).isPlain, n.isPlain, n.maxPool2d(kernel: (2, 2)).isPlain]
        }
        #expect(plain.contains(false), "oneDNN chose row-major layouts everywhere: \(plain)")
    }

    /// conv(s2) → batchNorm(+ReLU) → convTranspose(s2, output padding) → leakyRelu → avgPool(pad) →
    /// depthwise conv → sigmoid ⊙ tanh → slice/concat → globalAvgPool → linear.
    @Test(arguments: [true, false])
    func encoderDecoderChain(training: Bool) {
        let inputs = [TestData.normal([2, 3, 9, 9], seed: 50),
                      TestData.normal([16, 3, 3, 3], seed: 51, std: 0.3),
                      TestData.uniform([16], seed: 52, low: 0.5, high: 1.5), TestData.normal([16], seed: 53, std: 0.1),
                      TestData.normal([16, 8, 3, 3], seed: 54, std: 0.2), TestData.normal([16], seed: 55, std: 0.1),
                      TestData.normal([16, 1, 3, 3], seed: 56, std: 0.3),
                      TestData.normal([5, 16], seed: 57, std: 0.3)]
        expectBackendsAgree("encoder/decoder chain training=\(training)", inputs, tolerance: 2e-4) { t in
            let e = Tensor.conv2d(t[0], weight: t[1], stride: (2, 2), padding: (1, 1))                  // [2,16,5,5]
            let n = Tensor.batchNorm(e, scale: t[2], shift: t[3], runningMean: .zeros([16]), runningVar: .ones([16]),
                                     training: training, fuseReLU: true)
            let d = Tensor.convTranspose2d(n, weight: t[4], bias: t[5], stride: (2, 2), padding: (1, 1),
                                           outputPadding: (1, 1), groups: 2).leakyRelu(0.1)           // [2,16,10,10]
            let p = d.avgPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1), countIncludePad: false) // [2,16,5,5]
            let dw = Tensor.conv2d(p, weight: t[6], padding: (1, 1), groups: 16)
            let gate = dw.sigmoid() * dw.tanh()
            let mixed = Tensor.concat([gate.slice(axis: 1, 8..<16), gate.slice(axis: 1, 0..<8)], axis: 1)
            return Tensor.linear(mixed.globalAvgPool(), weight: t[7], bias: nil)
        }
    }

    /// A grouped convolution with few channels per group (oneDNN may pick a narrow channel
    /// blocking) feeding batch norm, pooling and a transposed convolution.
    @Test(arguments: [2, 4, 8, 32], [true, false])
    func groupedConvFeedsNormAndPool(groups: Int, training: Bool) {
        let inputs = [TestData.normal([2, 32, 6, 6], seed: 70), TestData.normal([32, 32 / groups, 3, 3], seed: 71, std: 0.3),
                      TestData.uniform([32], seed: 72, low: 0.5, high: 1.5), TestData.normal([32], seed: 73, std: 0.1),
                      TestData.normal([32, 32 / groups, 2, 2], seed: 74, std: 0.3)]
        expectBackendsAgree("grouped conv g\(groups) → BN(train=\(training)) → pools → convT", inputs, tolerance: 2e-4) { t in
            let c = Tensor.conv2d(t[0], weight: t[1], padding: (1, 1), groups: groups)
            let n = Tensor.batchNorm(c, scale: t[2], shift: t[3], runningMean: .zeros([32]), runningVar: .ones([32]),
                                     training: training, fuseReLU: true)
            let m = n.maxPool2d(kernel: (2, 2)) + n.avgPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
            return Tensor.convTranspose2d(m, weight: t[4], stride: (2, 2), groups: groups).globalAvgPool()
        }
    }

    /// conv1d → batchNorm → maxPool1d → convTranspose1d → exp/sum over axes → permute → linear.
    @Test func oneDimensionalChain() {
        let inputs = [TestData.normal([3, 16, 12], seed: 60),
                      TestData.normal([32, 16, 3], seed: 61, std: 0.2), TestData.normal([32], seed: 62, std: 0.1),
                      TestData.uniform([32], seed: 63, low: 0.5, high: 1.5), TestData.normal([32], seed: 64, std: 0.1),
                      TestData.normal([32, 16, 4], seed: 65, std: 0.2),
                      TestData.normal([4, 16], seed: 66, std: 0.3)]
        expectBackendsAgree("1-D chain", inputs, tolerance: 2e-4) { t in
            let c = Tensor.conv1d(t[0], weight: t[1], bias: t[2], padding: 1, activation: .leakyRelu(0.2))   // [3,32,12]
            let n = Tensor.batchNorm(c, scale: t[3], shift: t[4], runningMean: .zeros([32]), runningVar: .ones([32]),
                                     training: true)
            let p = n.maxPool1d(kernel: 2)                                                                   // [3,32,6]
            let u = Tensor.convTranspose1d(p, weight: t[5], stride: 2, padding: 1)                           // [3,16,12]
            let s = (u * 0.3).exp().sum(axes: [2])                                                          // [3,16]
            return Tensor.linear(s, weight: t[6], bias: nil).permute([1, 0])
        }
    }
}
