import Testing
@testable import CDCTensor

@Test func convMatchesReferenceSmoke() {
    let x = Tensor.randn([2, 32, 9, 9], seed: 1, requiresGrad: true)
    let w = Tensor.randn([64, 8, 3, 3], seed: 2, requiresGrad: true)
    let b = Tensor.randn([64], seed: 3, requiresGrad: true)
    func run(_ be: KernelBackend) -> ([Float], [Float], [Float], [Float]) {
        Engine.withBackend(be) {
            x.grad = nil; w.grad = nil; b.grad = nil
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: (2, 2), padding: (1, 1), groups: 4, activation: .leakyRelu(0.2))
            let p = y.maxPool2d(kernel: (2, 2))
            (p * p).sum().backward()
            return (y.values, x.grad!.values, w.grad!.values, b.grad!.values)
        }
    }
    let a = run(.onednn), r = run(.reference)
    for (u, v) in [(a.0, r.0), (a.1, r.1), (a.2, r.2), (a.3, r.3)] {
        let err = zip(u, v).map { abs($0 - $1) }.max()!
        #expect(err < 1e-3)
    }
}
