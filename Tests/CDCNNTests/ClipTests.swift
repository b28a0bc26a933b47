import CDCTensor
import Testing
@testable import CDCNN

@Suite struct ClipTests {
    /// Returned norm and clipped gradients equal `torch.nn.utils.clip_grad_norm_(max_norm=1)`.
    @Test func matchesPyTorch() throws {
        var params: [Tensor] = []
        for i in 0..<3 {
            let g = try NNFixtures.tensor("clip.grad.\(i)")
            let p = Tensor.zeros(g.shape, requiresGrad: true)
            p.grad = Tensor(g.values, shape: g.shape)
            params.append(p)
        }
        let norm = clipGradNorm(params, maxNorm: 1)
        let expectedNorm = try NNFixtures.tensor("clip.total_norm").item
        #expect(expectedNorm > 1)
        expectAllClose([norm], [expectedNorm], rtol: 1e-6, atol: 0, "total norm")
        for (i, p) in params.enumerated() {
            expectAllClose(p.grad!, try NNFixtures.tensor("clip.clipped.\(i)"), rtol: 1e-5, atol: 1e-7, "gradient \(i)")
        }
        // The clipped gradients have (almost exactly) the maximum norm.
        let after = params.flatMap { $0.grad!.values }.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs(after - 1) < 1e-5)
    }

    /// Below the limit nothing changes, and the norm is still returned.
    @Test func belowLimitLeavesGradients() {
        let p = Tensor.zeros([2], requiresGrad: true), q = Tensor.zeros([1], requiresGrad: true)
        p.grad = Tensor([3, 0], shape: [2]); q.grad = Tensor([4], shape: [1])
        let norm = clipGradNorm([p, q], maxNorm: 10)
        #expect(abs(norm - 5) < 1e-6)
        #expect(p.grad!.values == [3, 0] && q.grad!.values == [4])
    }

    /// Parameters without a gradient are ignored (and keep nil).
    @Test func nilGradientsIgnored() {
        let p = Tensor.zeros([2], requiresGrad: true), none = Tensor.zeros([3], requiresGrad: true)
        p.grad = Tensor([6, 8], shape: [2])
        let norm = clipGradNorm([none, p], maxNorm: 5)
        #expect(abs(norm - 10) < 1e-5)
        #expect(none.grad == nil)
        expectAllClose(p.grad!.values, [3, 4], rtol: 1e-5)
    }

    /// One gradient tensor shared by two parameters is counted twice in the norm (as PyTorch
    /// does) but scaled once for each parameter, never twice: clipGradNorm must not scale in
    /// place. The caller's tensor keeps its values.
    @Test func sharedGradientScaledOnce() {
        let shared = Tensor([3, 4], shape: [2])   // norm 5
        let p = Tensor.zeros([2], requiresGrad: true), q = Tensor.zeros([2], requiresGrad: true)
        p.grad = shared; q.grad = shared
        let norm = clipGradNorm([p, q], maxNorm: 1)
        let total = (50 as Float).squareRoot()
        #expect(abs(norm - total) < 1e-5)
        let coef = 1 / (total + 1e-6)
        expectAllClose(p.grad!.values, [3 * coef, 4 * coef], rtol: 1e-5, "first parameter")
        expectAllClose(q.grad!.values, [3 * coef, 4 * coef], rtol: 1e-5, "second parameter")
        #expect(shared.values == [3, 4], "the shared gradient tensor was modified in place")
    }

    /// Clipping a gradient that came from backward() does not touch the graph's tensors, and the
    /// clipped gradient is a plain tensor without history.
    @Test func clippedGradientHasNoHistory() {
        let layer = Linear(4, 3)
        let x = NNData.normal([5, 4], seed: 11)
        (layer(x).square().sum() * 100).backward()
        let params = layer.parameters()
        let norm = clipGradNorm(params, maxNorm: 0.5)
        #expect(norm > 0.5)
        for p in params {
            #expect(p.grad!.isLeaf)
            #expect(!p.grad!.requiresGrad)
        }
    }
}
