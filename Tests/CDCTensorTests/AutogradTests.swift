import Foundation
import Testing
@testable import CDCTensor

@Suite("Autograd semantics")
struct AutogradTests {
    @Test(arguments: allBackends)
    func gradientsAccumulateAcrossBackwardCalls(backend: KernelBackend) {
        let x0 = TestData.normal([2, 3, 4, 4], seed: 1), w0 = TestData.normal([5, 3, 3, 3], seed: 2)
        let r: (once: [[Float]], twice: [[Float]]) = onBackend(backend) {
            let x = TestData.leaf(x0), w = TestData.leaf(w0)
            func step() { (Tensor.conv2d(x, weight: w, padding: (1, 1)).tanh() * x.sum()).sum().backward() }
            step()
            let once = [x.grad!.values, w.grad!.values]
            step()   // a second graph, a second backward: gradients add up
            return (once, [x.grad!.values, w.grad!.values])
        }
        for i in 0..<2 {
            expectClose(r.twice[i], r.once[i].map { 2 * $0 }, tolerance: 1e-6, "input \(i) after two backward calls")
        }
    }

    @Test func retainGraphAllowsASecondBackward() {
        let x = TestData.leaf(TestData.normal([3, 4], seed: 3))
        let y = (x * x).sum()
        y.backward(retainGraph: true)
        expectValues(x.grad!, x.values.map { 2 * $0 }, "first backward")
        #expect(!y.isLeaf, "the graph is kept")
        y.backward()
        expectValues(x.grad!, x.values.map { 4 * $0 }, "second backward accumulates")
        #expect(y.isLeaf, "the graph is released after a backward without retainGraph")
    }

    @Test func backwardReleasesTheGraph() {
        let x = TestData.leaf(TestData.normal([3], seed: 4))
        let h = x * 2
        let y = (h * h).sum()
        y.backward()
        #expect(y.isLeaf && h.isLeaf, "intermediate nodes drop their backward functions")
        let before = x.grad!.values
        y.backward()      // nothing left to reach x
        expectValues(x.grad!, before, atol: 0, "a released graph does not add to the leaves again")
    }

    @Test func tensorUsedTwiceGetsTheSum() {
        let x = TestData.leaf(TestData.normal([2, 3], seed: 5))
        (x * x + x * 3).sum().backward()
        expectValues(x.grad!, x.values.map { 2 * $0 + 3 }, "d/dx (x² + 3x)")

        // Diamond: a = eˣ, b = a², c = a + b  ⇒  dc/dx = a + 2a²
        let z = TestData.leaf(TestData.normal([4], seed: 6))
        let a = z.exp()
        (a + a * a).sum().backward()
        expectValues(z.grad!, z.values.map { Foundation.exp($0) + 2 * Foundation.exp(2 * $0) }, atol: 1e-4, "diamond")

        // The same tensor several times in one op's inputs.
        let v = TestData.leaf(TestData.normal([2, 2], seed: 7))
        Tensor.concat([v, v, v], axis: 0).sum().backward()
        expectValues(v.grad!, [3, 3, 3, 3], "concat of the same tensor three times")
    }

    @Test(arguments: allBackends)
    func tensorUsedAsTwoConvolutionInputs(backend: KernelBackend) {
        // x is both the input and (reshaped) the weight of a convolution.
        let x0 = TestData.normal([2, 2, 3, 3], seed: 8)
        checkGradients("conv(x, x)", backend: backend, [x0]) { t in
            Tensor.conv2d(t[0], weight: t[0], padding: (1, 1))
        }
    }

    @Test(arguments: allBackends)
    func noGradRecordsNothing(backend: KernelBackend) {
        let x0 = TestData.normal([1, 2, 4, 4], seed: 9), w0 = TestData.normal([3, 2, 3, 3], seed: 10)
        let r: [Bool] = onBackend(backend) {
            let x = TestData.leaf(x0), w = TestData.leaf(w0)
            let inside: [Bool] = Autograd.noGrad {
                let y = Tensor.conv2d(x, weight: w).relu().maxPool2d(kernel: (2, 2)) * x.sum()
                let nested = Autograd.noGrad { x * 2 }
                return [Autograd.enabled, y.requiresGrad, y.isLeaf, y.opName == "leaf", nested.requiresGrad]
            }
            let after = Tensor.conv2d(x, weight: w)
            return inside + [Autograd.enabled, after.requiresGrad, after.opName == "conv"]
        }
        #expect(r == [false, false, true, true, false, true, true, true], "\(r)")
    }

    @Test func noGradDoesNotLeakIntoOtherTasks() async {
        let x = TestData.leaf(TestData.normal([3], seed: 11))
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { Autograd.noGrad { (x * 2).requiresGrad } }
            group.addTask { (x * 2).requiresGrad }
            var results: [Bool] = []
            for await r in group { results.append(r) }
            #expect(results.sorted { !$0 && $1 } == [false, true])
        }
        #expect(Autograd.enabled)
    }

    @Test func noGradRethrows() {
        struct Boom: Error {}
        #expect(throws: Boom.self) { try Autograd.noGrad { throw Boom() } }
        #expect(Autograd.enabled)
    }

    @Test func detachStopsTheGradient() {
        let x = TestData.leaf(TestData.normal([2, 3], seed: 12))
        let d = x.detach()
        #expect(!d.requiresGrad && d.isLeaf && d.values == x.values)
        (d * x).sum().backward()
        expectValues(x.grad!, x.values, "d(x̄·x)/dx = x̄ (not 2x)")
        #expect(d.grad == nil)

        // detach in the middle of a chain
        let y = TestData.leaf(TestData.normal([3], seed: 13))
        let h = (y * 3).exp()
        (h.detach() * y).sum().backward()
        expectValues(y.grad!, y.values.map { Foundation.exp(3 * $0) }, atol: 1e-4, "gradient stops at detach")
    }

    @Test func leavesWithoutRequiresGradGetNoGradient() {
        let a = TestData.leaf(TestData.normal([2, 3], seed: 14))
        let b = TestData.normal([2, 3], seed: 15)
        (a * b).sum().backward()
        expectValues(a.grad!, b.values, "d(ab)/da = b")
        #expect(b.grad == nil)
        let c = b * 2 + b.exp()
        #expect(!c.requiresGrad && c.isLeaf, "ops on constants record nothing")
        let w = TestData.leaf(TestData.normal([3, 4], seed: 16))
        Engine.withBackend(.reference) {
            Tensor.linear(TestData.normal([5, 3], seed: 17), weight: w.transposed(), bias: nil).sum().backward()
        }
        #expect(w.grad?.shape == [3, 4])
    }

    @Test(arguments: allBackends)
    func backwardOfNonScalarWithExplicitSeed(backend: KernelBackend) {
        let x0 = TestData.normal([2, 3], seed: 18), seed = TestData.normal([2, 3], seed: 19)
        let g: [Float] = onBackend(backend) {
            let x = TestData.leaf(x0)
            (x * 3).backward(seed)
            return x.grad!.values
        }
        expectValues(g, seed.values.map { 3 * $0 }, "d(3x)·seed")

        // A convolution output seeded directly equals the gradient of Σ y ⊙ seed.
        let xc = TestData.normal([1, 16, 4, 4], seed: 20), wc = TestData.normal([16, 16, 3, 3], seed: 21)
        let cseed = TestData.normal([1, 16, 4, 4], seed: 22)
        let (direct, viaSum): ([Float], [Float]) = onBackend(backend) {
            let x = TestData.leaf(xc), w = TestData.leaf(wc)
            Tensor.conv2d(x, weight: w, padding: (1, 1)).backward(cseed)
            let direct = x.grad!.values
            x.grad = nil
            (Tensor.conv2d(x, weight: w, padding: (1, 1)) * cseed).sum().backward()
            return (direct, x.grad!.values)
        }
        expectClose(direct, viaSum, tolerance: 1e-5, "seeded conv backward")
    }

    @Test func scalarBackwardWithoutSeedUsesOne() {
        let x = TestData.leaf(TestData.normal([3], seed: 23))
        (x * 5).mean().backward()
        expectValues(x.grad!, [5.0 / 3, 5.0 / 3, 5.0 / 3])
        let s = TestData.leaf(Tensor(scalar: 2))
        (s * s).backward()
        expectValues(s.grad!, [4])
    }

    @Test func intermediateTensorsKeepNoGradient() {
        let x = TestData.leaf(TestData.normal([4], seed: 24))
        let h = x * 2
        (h * h).sum().backward()
        #expect(h.grad == nil)
        expectValues(x.grad!, x.values.map { 8 * $0 }, "d(4x²)/dx")
    }

    @Test func opNamesAndLeaves() {
        let x = TestData.leaf(TestData.normal([2, 2], seed: 25))
        #expect(x.isLeaf && x.opName == "leaf")
        #expect((x + x).opName == "add" && (x - x).opName == "sub" && (x * x).opName == "mul" && (x / x).opName == "div")
        #expect(Engine.withBackend(.reference) { x.matmul(x) }.opName == "matmul" && x.reshape([4]).opName == "reshape" && x.sum().opName == "sum")
        #expect(x.exp().opName == "exp" && x.relu().opName == "relu" && x.permute([1, 0]).opName == "permute")
        // The name is the recorded `Op`'s raw value.
        #expect(x.op == nil && (x + x).op == .add && (x * 2).op == .mulScalar && x.sum(axes: [0]).op == .sumAxes)
        #expect(Op.allCases.allSatisfy { Op(rawValue: $0.rawValue) == $0 && $0.rawValue != "leaf" })
    }

    /// A blocked (oneDNN layout) gradient reaching a leaf is stored row-major.
    @Test func blockedGradientIsStoredPlain() {
        let x0 = TestData.normal([1, 16, 4, 4], seed: 26), w0 = TestData.normal([16, 16, 1, 1], seed: 27)
        let r: (Bool, Bool, [Float], [Float]) = onBackend(.onednn) {
            let z = Tensor.conv2d(x0, weight: w0).detach()
            z.requiresGrad = true
            (z * z).sum().backward()
            return (z.isPlain, z.grad!.isPlain, z.grad!.values, z.values)
        }
        #expect(r.1, "leaf gradient is row-major")
        expectValues(r.2, r.3.map { 2 * $0 }, atol: 1e-5, "d(z²)/dz through a blocked tensor (z plain: \(r.0))")
    }

    @Test func customGradientAndGradientScaling() {
        let x = TestData.leaf(TestData.normal([3], seed: 28))
        // Straight-through rounding: forward rounds, backward passes the gradient unchanged.
        let rounded = Tensor(x.values.map { $0.rounded() }, shape: [3])
        let ste = rounded.withCustomGradient("ste", inputs: [x]) { g in [g] }
        #expect(ste.requiresGrad && ste.op == .custom && ste.opName == "ste")
        (ste * 2).sum().backward()
        expectValues(x.grad!, [2, 2, 2], "straight-through gradient")

        let y = TestData.leaf(TestData.normal([3], seed: 29))
        let scaled = y.gradientScaled(by: 0.25)
        #expect(scaled.op == .gradientScale)
        expectValues(scaled, y.values, atol: 0, "same values")
        (scaled * scaled).sum().backward()
        expectValues(y.grad!, y.values.map { 0.5 * $0 }, "gradient scaled by 1/4")
    }
}
