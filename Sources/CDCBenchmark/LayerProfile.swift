import CDCNN
import CDCTensor
import Foundation

/// Single layers of the reference models timed forward and forward + backward (a development
/// aid for kernel work; `cdc profile`).
public enum LayerProfile {
    /// One line per layer and direction: the median and minimum of `repeats` timed calls (ms).
    public static func run(repeats: Int) -> [String] {
        var lines: [String] = []
        func time(_ name: String, _ body: () -> Void) {
            body(); body()
            var ts: [Double] = []
            for _ in 0..<max(1, repeats) { let t0 = Date(); body(); ts.append(Date().timeIntervalSince(t0) * 1000) }
            ts.sort()
            lines.append(String(format: "%-34@ median %8.3f ms  min %8.3f", name as NSString, ts[ts.count / 2], ts[0]))
        }
        GlobalRandom.seed(0)
        func fb(_ name: String, _ m: Module, _ shape: [Int]) {
            let x = Tensor.rand(shape, seed: 1)
            x.requiresGrad = true
            time(name + " fwd") { _ = Autograd.noGrad { m(x) } }
            time(name + " fwd+bwd") { m(x).sum().backward() }
        }
        fb("deconv 16->64 s1", ConvTranspose2d(16, 64, kernelSize: 3, padding: 1), [128, 16, 7, 7])
        fb("deconv 64->32 s2", ConvTranspose2d(64, 32, kernelSize: 4, stride: 2, padding: 1), [128, 64, 7, 7])
        fb("deconv 32->1 s2", ConvTranspose2d(32, 1, kernelSize: 4, stride: 2, padding: 1), [128, 32, 14, 14])
        fb("conv 1->32 k3", Conv2d(1, 32, kernelSize: 3, padding: 1), [128, 1, 28, 28])
        fb("conv 1->32 k5 s2", Conv2d(1, 32, kernelSize: 5, stride: 2, padding: 2), [128, 1, 28, 28])
        fb("grouped conv g8 32", Conv2d(32, 32, kernelSize: 3, padding: 1, groups: 8, bias: false), [128, 32, 28, 28])
        fb("bn 32x28x28", BatchNorm2d(32), [128, 32, 28, 28])
        return lines
    }
}
