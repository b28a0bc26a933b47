import CDCTensor
import Testing
@testable import CDCNN

/// FLOPs = 2 × multiply-adds: conv `out_elements·(C_in/groups)·k`, conv-transpose
/// `in_elements·(C_out/groups)·k`, linear `in_elements·out_features` (k = kernel area).
@Suite struct FlopCounterTests {
    func flops(_ m: Module, _ shape: [Int]) -> Int {
        let x = NNData.normal(shape, seed: 1)
        return FlopCounter.count { _ = m(x) }
    }

    @Test func linear() {
        #expect(flops(Linear(8, 5), [3, 8]) == 2 * 3 * 8 * 5)
        #expect(flops(Linear(8, 5, bias: false), [1, 8]) == 2 * 8 * 5)
    }

    @Test func conv2d() {
        // out [2, 6, 5, 5] = 300 elements, C_in/groups = 2, k = 9.
        #expect(flops(Conv2d(4, 6, kernelSize: 3, padding: 1, groups: 2), [2, 4, 5, 5]) == 2 * 300 * 2 * 9)
        // Stride 2: out [1, 4, 3, 3] = 36 elements, C_in = 3.
        #expect(flops(Conv2d(3, 4, kernelSize: 3, stride: 2), [1, 3, 7, 7]) == 2 * 36 * 3 * 9)
        // Depthwise: C_in/groups = 1.
        #expect(flops(Conv2d(4, 4, kernelSize: 3, padding: 1, groups: 4), [1, 4, 4, 4]) == 2 * 64 * 1 * 9)
    }

    @Test func convTranspose2d() {
        // in [1, 4, 3, 3] = 36 elements, C_out/groups = 3, k = 9.
        #expect(flops(ConvTranspose2d(4, 6, kernelSize: 3, stride: 2, groups: 2), [1, 4, 3, 3]) == 2 * 36 * 3 * 9)
        // in [2, 2, 3, 3] = 36 elements, C_out = 3, k = 16 (output 6×6; counted from the input).
        #expect(flops(ConvTranspose2d(2, 3, kernelSize: 4, stride: 2, padding: 1), [2, 2, 3, 3]) == 2 * 36 * 3 * 16)
    }

    @Test func oneDimensional() {
        // Conv1d: out [2, 4, 8] = 64 elements, C_in/groups = 1, k = 3.
        #expect(flops(Conv1d(2, 4, kernelSize: 3, groups: 2), [2, 2, 10]) == 2 * 64 * 1 * 3)
        // ConvTranspose1d: in [1, 3, 5] = 15 elements, C_out = 2, k = 4.
        #expect(flops(ConvTranspose1d(3, 2, kernelSize: 4, stride: 2), [1, 3, 5]) == 2 * 15 * 2 * 4)
    }

    /// Layers without multiply-adds count nothing; a Sequential sums its layers, fused pairs
    /// included.
    @Test func sequentialSumsLayers() {
        for layer in [ReLU(), BatchNorm2d(2), MaxPool2d(2), Flatten(), Dropout(0.5), GlobalAvgPool()] as [Module] {
            #expect(flops(layer, [2, 2, 4, 4]) == 0, "\(type(of: layer))")
        }
        let s = Sequential(Conv2d(1, 2, kernelSize: 3, padding: 1), ReLU(),            // 2·(2·2·16)·1·9
                           BatchNorm2d(2), ReLU(),
                           ConvTranspose2d(2, 1, kernelSize: 2, stride: 2), Tanh(),     // 2·(2·2·16)·1·4
                           Flatten(), Linear(64, 3))                                   // 2·(2·64)·3
        #expect(flops(s, [2, 1, 4, 4]) == 2 * 64 * 9 + 2 * 64 * 4 + 2 * 128 * 3)
    }

    /// Counting runs without recording gradients; outside `count` nothing is counted, and each
    /// count starts from zero.
    @Test func countingScope() {
        let l = Linear(4, 2)
        let x = NNData.normal([1, 4], seed: 2, requiresGrad: true)
        var enabled = true
        var requiresGrad = true
        let n = FlopCounter.count {
            enabled = Autograd.enabled
            requiresGrad = l(x).requiresGrad
        }
        #expect(n == 16)
        #expect(!enabled && !requiresGrad)
        #expect(l(x).requiresGrad)   // outside: recording as usual
        #expect(FlopCounter.count { _ = l(x); _ = l(x) } == 32)
        #expect(FlopCounter.count {} == 0)
    }
}
