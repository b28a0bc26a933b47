import ArgumentParser
import CDCModels
import CDCNN
import CDCTensor
import Foundation

/// `cdc profile`: times single layers forward and backward (development aid).
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time single reference layers (development aid).", shouldDisplay: false)
    @Option var repeats = 20

    func run() throws {
        func time(_ name: String, _ body: () -> Void) {
            body(); body()
            let t0 = Date()
            for _ in 0..<repeats { body() }
            print(String(format: "%-40@ %8.3f ms", name as NSString, Date().timeIntervalSince(t0) * 1000 / Double(repeats)))
        }
        GlobalRandom.seed(0)
        let d2 = ConvTranspose2d(64, 32, kernelSize: 4, stride: 2, padding: 1)
        let x = Tensor.rand([128, 64, 7, 7], seed: 1)
        time("deconv 64->32 s2 fwd") { _ = Autograd.noGrad { d2(x) } }
        let c2 = Conv2d(32, 64, kernelSize: 5, stride: 2, padding: 2)
        let x2 = Tensor.rand([128, 32, 14, 14], seed: 1)
        time("conv 32->64 k5 s2 fwd") { _ = Autograd.noGrad { c2(x2) } }
        let big = Tensor.rand([128, 256, 28, 28], seed: 2)
        time("relu 25M") { _ = Autograd.noGrad { big.relu() } }
        time("add 25M") { _ = Autograd.noGrad { big + big } }
    }
}
