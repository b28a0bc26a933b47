import Foundation
import Testing
@testable import CDCTensor

/// 0, 1, 2, … as a tensor of `shape`.
func arange(_ shape: [Int], from start: Float = 0) -> Tensor {
    Tensor((0..<shape.reduce(1, *)).map { start + Float($0) }, shape: shape)
}

@Suite("Shape ops: forward values")
struct ShapeOpsTests {
    @Test func reshapeAndFlatten() {
        let x = arange([2, 3, 4])
        let r = x.reshape([4, -1])
        #expect(r.shape == [4, 6] && r.values == x.values)
        #expect(x.reshape([-1]).shape == [24] && x.reshape([2, -1, 2]).shape == [2, 6, 2])
        #expect(arange([2, 3, 4, 5]).flatten().shape == [2, 60])
        #expect(arange([2, 3, 4, 5]).flatten(from: 1, to: 2).shape == [2, 12, 5])
        #expect(arange([2, 3, 4, 5]).flatten(from: 0, to: -1).shape == [120])
        #expect(arange([2, 3, 4, 5]).flatten(from: 2).shape == [2, 3, 20])
        #expect(x.reshape([24]).values == x.values)
    }

    @Test func permuteAndTranspose() {
        let x = arange([2, 3, 4])
        let p = x.permute([2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        let xv = x.values, pv = p.values
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 {
            #expect(pv[(k * 2 + i) * 3 + j] == xv[(i * 3 + j) * 4 + k])
        } } }
        let m = arange([2, 3])
        #expect(m.transposed().shape == [3, 2] && m.transposed().values == [0, 3, 1, 4, 2, 5])
        #expect(x.transposed(1, 2).shape == [2, 4, 3])
        #expect(x.permute([0, 1, 2]).values == xv)
        #expect(p.permute([1, 2, 0]).values == xv, "the inverse permutation restores the order")
        let nchw = arange([1, 2, 2, 2])
        #expect(nchw.permute([0, 2, 3, 1]).values == [0, 4, 1, 5, 2, 6, 3, 7], "NCHW → NHWC")
    }

    @Test func concatAndSlice() {
        let a = arange([2, 1, 3]), b = arange([2, 2, 3], from: 100)
        let c = Tensor.concat([a, b], axis: 1)
        #expect(c.shape == [2, 3, 3])
        #expect(c.values == [0, 1, 2, 100, 101, 102, 103, 104, 105, 3, 4, 5, 106, 107, 108, 109, 110, 111])
        let c0 = Tensor.concat([arange([1, 2]), arange([2, 2], from: 10)], axis: 0)
        #expect(c0.shape == [3, 2] && c0.values == [0, 1, 10, 11, 12, 13])
        let c2 = Tensor.concat([arange([2, 2]), arange([2, 1], from: 9)], axis: 1)
        #expect(c2.values == [0, 1, 9, 2, 3, 10])
        let x = arange([3, 4, 5])
        let s = x.slice(axis: 1, 1..<3)
        #expect(s.shape == [3, 2, 5])
        #expect(s.values.prefix(10) == ArraySlice((5..<15).map(Float.init)))
        #expect(x.slice(axis: 0, 2..<3).values == (40..<60).map(Float.init))
        #expect(x.slice(axis: 2, 4..<5).values == [4, 9, 14, 19, 24, 29, 34, 39, 44, 49, 54, 59])
        #expect(x.slice(axis: 1, 0..<4).values == x.values)
        #expect(Tensor.concat([c.slice(axis: 1, 0..<1), c.slice(axis: 1, 1..<3)], axis: 1).values == c.values)
    }

    @Test func reductions() {
        let x = arange([2, 3, 4])
        #expect(x.sum().item == 276 && x.sum().shape == [])
        #expect(abs(x.mean().item - 11.5) < 1e-6)
        let s02 = x.sum(axes: [0, 2])
        #expect(s02.shape == [3] && s02.values == [60, 92, 124])
        let s1k = x.sum(axes: [1], keepDims: true)
        #expect(s1k.shape == [2, 1, 4] && s1k.values == [12, 15, 18, 21, 48, 51, 54, 57])
        let sNeg = x.sum(axes: [-1])
        #expect(sNeg.shape == [2, 3] && sNeg.values == [6, 22, 38, 54, 70, 86])
        #expect(x.sum(axes: [0, 1, 2]).shape == [] && x.sum(axes: [0, 1, 2]).item == 276)
        let m = x.mean(axes: [0, -1], keepDims: true)
        #expect(m.shape == [1, 3, 1] && m.values == [7.5, 11.5, 15.5])
        #expect(x.mean(axes: [1]).values == [4, 5, 6, 7, 16, 17, 18, 19])
        #expect(arange([3, 4]).argmaxLastAxis() == [3, 3, 3])
        #expect(Tensor([1, 5, 2, 9, 0, 3], shape: [2, 3]).argmaxLastAxis() == [1, 0])
        #expect(arange([2, 3, 4]).sumToShape([3, 1]).values == [60, 92, 124])
        #expect(arange([2, 3]).sumToShape([]).item == 15)
    }

    @Test func broadcasting() {
        #expect(Broadcast.shape([2, 3, 4], [3, 1]) == [2, 3, 4])
        #expect(Broadcast.shape([2, 1], [1, 3]) == [2, 3])
        #expect(Broadcast.shape([], [2]) == [2])
        #expect(Broadcast.shape([3], [4]) == nil)
        #expect(Broadcast.shape([2, 3], [3, 2]) == nil)
        let a = arange([2, 3]), row = Tensor([10, 20, 30], shape: [3]), col = Tensor([100, 200], shape: [2, 1])
        #expect((a + row).values == [10, 21, 32, 13, 24, 35])
        #expect((a + col).values == [100, 101, 102, 203, 204, 205])
        #expect((row - a).values == [10, 19, 28, 7, 16, 25])
        #expect((col * Tensor([1, 2, 3], shape: [1, 3])).values == [100, 200, 300, 200, 400, 600])
        #expect((a / Tensor(scalar: 2)).values == [0, 0.5, 1, 1.5, 2, 2.5])
        #expect((Tensor(scalar: 1) - a).shape == [2, 3])
        #expect((arange([2, 1, 4]) + arange([3, 1])).shape == [2, 3, 4])
        #expect((arange([2, 1, 4]) + arange([3, 1])).values.prefix(8) == [0, 1, 2, 3, 1, 2, 3, 4])
    }

    @Test func elementwiseValues() {
        let x = Tensor([-2, -0.5, 0.25, 1, 3], shape: [5])
        #expect(x.relu().values == [0, 0, 0.25, 1, 3])
        #expect(x.leakyRelu(0.1).values == [-0.2, -0.05, 0.25, 1, 3])
        #expect(x.clamp(-1, 2).values == [-1, -0.5, 0.25, 1, 2])
        expectValues(x.sigmoid(), x.values.map { 1 / (1 + Foundation.exp(-$0)) }, atol: 1e-6)
        expectValues(x.tanh(), x.values.map { Foundation.tanh($0) }, atol: 1e-6)
        expectValues(x.exp(), x.values.map { Foundation.exp($0) }, atol: 1e-5)
        let p = Tensor([0.25, 1, 4], shape: [3])
        expectValues(p.log(), [Foundation.log(0.25), 0, Foundation.log(4)], atol: 1e-6)
        expectValues(p.sqrt(), [0.5, 1, 2], atol: 1e-6)
        #expect((-x).values == [2, 0.5, -0.25, -1, -3])
        #expect((x * 2 + 1).values == [-3, 0, 1.5, 3, 7])
        #expect((1 - x).values == [3, 1.5, 0.75, 0, -2])
        #expect((x / 4).values == [-0.5, -0.125, 0.0625, 0.25, 0.75])
        #expect(x.square().values == [4, 0.25, 0.0625, 1, 9])
        #expect(Tensor.addRelu(x, Tensor([1, 1, 1, 1, 1], shape: [5])).values == [0, 0.5, 1.25, 2, 4])
    }

    @Test func lossValues() {
        let logits = Tensor([1, 2, 3, 1, 1, 1], shape: [2, 3])
        let lse1 = 3 + Foundation.log(1 + Foundation.exp(-1.0) + Foundation.exp(-2.0))
        let lsm = logits.logSoftmax().values
        expectValues(lsm, [1 - lse1, 2 - lse1, 3 - lse1].map(Float.init) + [Float](repeating: -Float(Foundation.log(3.0)), count: 3),
                     atol: 1e-6)
        let ce = Tensor.crossEntropy(logits, labels: [2, 0]).item
        #expect(abs(Double(ce) - ((lse1 - 3) + Foundation.log(3.0)) / 2) < 1e-6)
        // Large logits stay finite (computed stably).
        #expect(Tensor([1000, 0, -1000], shape: [1, 3]).logSoftmax().values.allSatisfy { $0.isFinite || $0 == -.infinity })
        #expect(abs(Tensor([1000, 0, -1000], shape: [1, 3]).logSoftmax().values[0]) < 1e-6)
        #expect(abs(Tensor.mse(Tensor([1, 2, 3], shape: [3]), Tensor([1, 0, 0], shape: [3])).item - 13.0 / 3) < 1e-6)
    }

    @Test(arguments: allBackends)
    func matmulAndLinear(backend: KernelBackend) {
        let (mm, lin, linNoBias) = onBackend(backend) {
            let a = arange([2, 3]), b = arange([3, 2])
            let w = Tensor([1, 0, -1, 2, 1, 0], shape: [2, 3]), bias = Tensor([0.5, -0.5], shape: [2])
            return (a.matmul(b).values, Tensor.linear(a, weight: w, bias: bias).values, Tensor.linear(a, weight: w, bias: nil).values)
        }
        #expect(mm == [10, 13, 28, 40])
        #expect(lin == [-1.5, 0.5, -1.5, 9.5])
        #expect(linNoBias == [-2, 1, -2, 10])
    }

    @Test(arguments: allBackends)
    func convolutionByHand(backend: KernelBackend) {
        let r: [[Float]] = onBackend(backend) {
            let x = arange([1, 1, 3, 3], from: 1)
            let w = Tensor([1, 0, 0, -1], shape: [1, 1, 2, 2])
            let plain = Tensor.conv2d(x, weight: w, bias: Tensor([0.5], shape: [1]))
            let padded = Tensor.conv2d(x, weight: w, stride: (2, 2), padding: (1, 1))
            let depthwise = Tensor.conv2d(arange([1, 2, 1, 2], from: 1), weight: Tensor([2, -1], shape: [2, 1, 1, 1]), groups: 2)
            let t = arange([1, 1, 2, 2], from: 1), ones = Tensor.ones([1, 1, 2, 2])
            let up2 = Tensor.convTranspose2d(t, weight: ones, stride: (2, 2))
            let up1 = Tensor.convTranspose2d(t, weight: ones)
            let s = arange([1, 1, 5], from: 1), dw = Tensor([1, -1], shape: [1, 1, 2])
            let c1 = Tensor.conv1d(s, weight: dw)
            let c1d = Tensor.conv1d(s, weight: dw, dilation: 2)
            let t1 = Tensor.convTranspose1d(Tensor([1, 2], shape: [1, 1, 2]), weight: Tensor([1, 10, 100], shape: [1, 1, 3]),
                                            stride: 2, outputPadding: 1)
            return [plain.values, padded.values, depthwise.values, up2.values, up1.values, c1.values, c1d.values, t1.values]
        }
        #expect(r[0] == [-3.5, -3.5, -3.5, -3.5])
        #expect(r[1] == [-1, -3, -7, -4])
        #expect(r[2] == [2, 4, -3, -4])
        #expect(r[3] == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        #expect(r[4] == [1, 3, 2, 4, 10, 6, 3, 7, 4])
        #expect(r[5] == [-1, -1, -1, -1])
        #expect(r[6] == [-2, -2, -2])
        #expect(r[7] == [1, 10, 102, 20, 200, 0])
    }

    @Test(arguments: allBackends)
    func poolingByHand(backend: KernelBackend) {
        let r: [[Float]] = onBackend(backend) {
            let x4 = arange([1, 1, 4, 4], from: 1), x3 = arange([1, 1, 3, 3], from: 1)
            return [x4.maxPool2d(kernel: (2, 2)).values,
                    x4.avgPool2d(kernel: (2, 2)).values,
                    x3.avgPool2d(kernel: (2, 2), stride: (2, 2), padding: (1, 1), countIncludePad: true).values,
                    x3.avgPool2d(kernel: (2, 2), stride: (2, 2), padding: (1, 1), countIncludePad: false).values,
                    (x3 - 20).maxPool2d(kernel: (2, 2), stride: (2, 2), padding: (1, 1)).values,
                    Tensor([1, 3, 2, 5, 4], shape: [1, 1, 5]).maxPool1d(kernel: 2).values,
                    Tensor([1, 3, 2, 5, 4], shape: [1, 1, 5]).avgPool1d(kernel: 2).values,
                    arange([2, 2, 2, 2]).globalAvgPool().values,
                    arange([1, 2, 3]).globalAvgPool().values]
        }
        #expect(r[0] == [6, 8, 14, 16])
        #expect(r[1] == [3.5, 5.5, 11.5, 13.5])
        #expect(r[2] == [0.25, 1.25, 2.75, 7])
        #expect(r[3] == [1, 2.5, 5.5, 7])
        #expect(r[4] == [-19, -17, -13, -11], "padding counts as −∞ for max pooling")
        #expect(r[5] == [3, 5])
        #expect(r[6] == [2, 3.5])
        #expect(r[7] == [1.5, 5.5, 9.5, 13.5])
        #expect(r[8] == [1, 4])
    }

    @Test func tensorBasics() {
        #expect(Tensor.zeros([2, 3]).values == [Float](repeating: 0, count: 6))
        #expect(Tensor.ones([2]).values == [1, 1] && Tensor.full([3], 2.5).values == [2.5, 2.5, 2.5])
        #expect(Tensor(scalar: 4).shape == [] && Tensor(scalar: 4).item == 4 && Tensor(scalar: 4).rank == 0)
        let a = arange([2, 2])
        let c = a.copy()
        c.storage.pointer[0] = 99
        #expect(a.values[0] == 0, "copy is deep")
        let d = a.detach()
        #expect(d.values == a.values)
        a.assign(Tensor([5, 6, 7, 8], shape: [2, 2]))
        #expect(a.values == [5, 6, 7, 8])
        #expect(Tensor.zeros([2], requiresGrad: true).requiresGrad)
        #expect(arange([2, 3]).count == 6 && arange([2, 3]).rank == 2 && arange([2, 3]).isPlain)
    }

    /// Shape ops and arithmetic on tensors in oneDNN's blocked layouts (outputs of a convolution)
    /// give the same values as on the row-major reference outputs.
    @Test func opsOnBlockedTensors() {
        let x = TestData.normal([2, 16, 3, 4], seed: 1), w = TestData.normal([16, 16, 1, 1], seed: 2)
        let p = TestData.normal([2, 16, 3, 4], seed: 3)
        func ops(_ backend: KernelBackend) -> (Bool, [[Float]]) {
            onBackend(backend) {
                let y = Tensor.conv2d(x, weight: w), z = Tensor.conv2d(p, weight: w)
                let copy = y.copy()
                let assigned = Tensor.conv2d(p, weight: w)
                assigned.assign(y)
                return (y.isPlain, [y.values, y.reshape([2, -1]).values, y.flatten().values, y.permute([0, 2, 3, 1]).values,
                        y.slice(axis: 1, 3..<9).values, Tensor.concat([y, z], axis: 1).values, y.sum(axes: [0, 2, 3]).values,
                        y.mean(axes: [1]).values, (y + p).values, (p - y).values, (y * z).values, (y / (z * z + 1)).values,
                        y.exp().values, y.relu().values, y.leakyRelu(0.3).values, (y * 2 + 1).values, y.sigmoid().values,
                        y.clamp(-0.5, 0.5).values, [y.sum().item], copy.values, assigned.values, y.detach().values,
                        y.globalAvgPool().values, (y + y).values])
            }
        }
        let (aPlain, a) = ops(.onednn), (_, r) = ops(.reference)
        #expect(!aPlain, "oneDNN returned a row-major convolution output; this test needs a blocked one")
        for i in a.indices { expectClose(a[i], r[i], tolerance: 1e-5, "blocked op #\(i)") }
    }
}
