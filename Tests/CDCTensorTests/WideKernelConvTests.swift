import Testing
@testable import CDCTensor

/// The im2col + GEMM path of 1-channel wide-kernel 1-D convolutions (`WideKernelConv1d`, used
/// for M5's first layer) against finite differences and against the reference kernels,
/// including the channels-last output feeding batch norm and max pooling.
@Suite struct WideKernelConvTests {
    @Test func pathIsTakenOnlyForWideOneChannelKernels() {
        func g(_ c: Int, _ k: Int, groups: Int = 1) -> ConvGeometry {
            ConvGeometry(batch: 2, inChannels: c, height: 1, width: 400, outChannels: 8, kernelH: 1, kernelW: k,
                         strideW: 4, padW: 38, groups: groups)
        }
        #expect(WideKernelConv1d.applies(g(1, 80)))
        #expect(WideKernelConv1d.applies(g(1, 32)))
        #expect(!WideKernelConv1d.applies(g(1, 9)))
        #expect(!WideKernelConv1d.applies(g(2, 80)))
    }

    @Test(arguments: [(false, 0, 4), (true, 15, 4), (true, 3, 1), (false, 40, 3)])
    func gradientsMatchFiniteDifferences(bias: Bool, padding: Int, stride: Int) {
        var inputs = [TestData.normal([2, 1, 60], seed: 11), TestData.normal([3, 1, 32], seed: 12, std: 0.3)]
        if bias { inputs.append(TestData.normal([3], seed: 13)) }
        checkGradients("wide conv1d pad \(padding) stride \(stride)", backend: .onednn, inputs) { t in
            Tensor.conv1d(t[0], weight: t[1], bias: bias ? t[2] : nil, stride: stride, padding: padding)
        }
    }

    @Test(arguments: [FusedActivation.none, .relu])
    func matchesReferenceKernelsThroughBatchNormAndPooling(activation: FusedActivation) {
        let x = TestData.normal([3, 1, 400], seed: 21), w = TestData.normal([16, 1, 80], seed: 22, std: 0.1)
        let b = TestData.normal([16], seed: 23, std: 0.1)
        let seed = TestData.normal([3, 16, 25], seed: 24)
        func run(_ backend: KernelBackend) -> [[Float]] {
            onBackend(backend) {
                let xs = TestData.leaf(x, requiresGrad: true), ws = TestData.leaf(w, requiresGrad: true)
                let bs = TestData.leaf(b, requiresGrad: true)
                let y = Tensor.conv1d(xs, weight: ws, bias: bs, stride: 4, padding: 38, activation: activation)
                let z = Tensor.batchNorm(y, scale: Tensor.ones([16]), shift: Tensor.zeros([16]), runningMean: Tensor.zeros([16]),
                                         runningVar: Tensor.ones([16]), training: true, fuseReLU: true).maxPool1d(kernel: 4)
                (z * seed).sum().backward()
                return [y.values, z.values, xs.grad!.values, ws.grad!.values, bs.grad!.values]
            }
        }
        let (ours, ref) = (run(.onednn), run(.reference))
        for (i, (a, r)) in zip(ours, ref).enumerated() {
            #expect(a.count == r.count)
            let scale = r.map { abs($0) }.max() ?? 0
            let err = zip(a, r).map { abs($0 - $1) }.max() ?? 0
            #expect(err <= 1e-4 * Swift.max(scale, 1), "tensor \(i): max error \(err), scale \(scale)")
        }
    }
}
