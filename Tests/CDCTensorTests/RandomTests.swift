import Foundation
import Testing
@testable import CDCTensor

@Suite("Seeded generator")
struct RandomTests {
    @Test func sameSeedSameSequence() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let sa = (0..<100).map { _ in a.next() }, sb = (0..<100).map { _ in b.next() }, sc = (0..<100).map { _ in c.next() }
        #expect(sa == sb)
        #expect(sa != sc)
        #expect(Set(sa).count == 100, "no repeats in 100 draws")
        var u1 = SeededGenerator(seed: 7), u2 = SeededGenerator(seed: 7)
        #expect((0..<50).map { _ in u1.nextUniform() } == (0..<50).map { _ in u2.nextUniform() })
        #expect((0..<50).map { _ in u1.nextNormal() } == (0..<50).map { _ in u2.nextNormal() })
        #expect(Tensor.randn([4, 5], seed: 9).values == Tensor.randn([4, 5], seed: 9).values)
        #expect(Tensor.rand([4, 5], seed: 9).values == Tensor.rand([4, 5], seed: 9).values)
        #expect(Tensor.randn([4, 5], seed: 9).values != Tensor.randn([4, 5], seed: 10).values)
    }

    @Test func copiesContinueIdentically() {
        var a = SeededGenerator(seed: 5)
        _ = (0..<10).map { _ in a.next() }
        var b = a     // a value type: the copy continues the same sequence
        #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
    }

    @Test func uniformIsInUnitIntervalWithMeanOneHalf() {
        var g = SeededGenerator(seed: 1)
        let n = 10_000
        let v = (0..<n).map { _ in Double(g.nextUniform()) }
        #expect(v.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = v.reduce(0, +) / Double(n)
        let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)
        #expect(abs(mean - 0.5) < 0.015, "mean \(mean)")            // std of the mean ≈ 0.0029
        #expect(abs(variance - 1.0 / 12) < 0.005, "variance \(variance)")
        // Roughly flat: each tenth holds about 1000 draws.
        var bins = [Int](repeating: 0, count: 10)
        for x in v { bins[Int(x * 10)] += 1 }
        #expect(bins.allSatisfy { abs($0 - 1000) < 150 }, "\(bins)")
    }

    @Test func normalHasMeanZeroAndUnitStd() {
        var g = SeededGenerator(seed: 2)
        let n = 10_000
        let v = (0..<n).map { _ in Double(g.nextNormal()) }
        let mean = v.reduce(0, +) / Double(n)
        let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)).squareRoot()
        #expect(abs(mean) < 0.05, "mean \(mean)")                     // std of the mean ≈ 0.01
        #expect(abs(std - 1) < 0.05, "std \(std)")
        #expect(v.allSatisfy { $0.isFinite })
        let within1 = Double(v.filter { abs($0) < 1 }.count) / Double(n)
        #expect(abs(within1 - 0.6827) < 0.02, "P(|z| < 1) = \(within1)")
    }

    @Test func tensorFactoriesUseParameters() {
        var g = SeededGenerator(seed: 3)
        let u = Tensor.uniform([10_000], low: -2, high: 3, generator: &g).values
        #expect(u.allSatisfy { $0 >= -2 && $0 < 3 })
        #expect(abs(u.reduce(0, +) / 10_000 - 0.5) < 0.05)
        let n = Tensor.normal([10_000], mean: 4, std: 0.5, generator: &g).values.map(Double.init)
        let mean = n.reduce(0, +) / 10_000
        let std = (n.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 9_999).squareRoot()
        #expect(abs(mean - 4) < 0.03 && abs(std - 0.5) < 0.03, "mean \(mean) std \(std)")
        let t = Tensor.randn([3, 4], seed: 1, requiresGrad: true)
        #expect(t.requiresGrad && t.shape == [3, 4])
    }
}
