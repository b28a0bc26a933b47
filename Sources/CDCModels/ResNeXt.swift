import CDCNN
import CDCTensor

/// A ResNeXt bottleneck block: 1×1 → grouped 3×3 (stride s) → 1×1, each with BatchNorm,
/// plus the shortcut (identity, or 1×1 conv + BN when the shape changes), then ReLU.
public final class ResNeXtBlock: Module {
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let conv2: Conv2d, bn2: BatchNorm2d
    public let conv3: Conv2d, bn3: BatchNorm2d
    public let shortcut: Sequential?

    public init(inChannels: Int, inner: Int, outChannels: Int, stride: Int, groups: Int) {
        conv1 = Conv2d(inChannels, inner, kernelSize: 1, bias: false); bn1 = BatchNorm2d(inner)
        conv2 = Conv2d(inner, inner, kernelSize: 3, stride: stride, padding: 1, groups: groups, bias: false)
        bn2 = BatchNorm2d(inner)
        conv3 = Conv2d(inner, outChannels, kernelSize: 1, bias: false); bn3 = BatchNorm2d(outChannels)
        shortcut = (stride != 1 || inChannels != outChannels)
            ? Sequential(Conv2d(inChannels, outChannels, kernelSize: 1, stride: stride, bias: false), BatchNorm2d(outChannels))
            : nil
    }

    public override func forward(_ x: Tensor) -> Tensor {
        var out = bn1.forward(conv1(x), fuseReLU: true)
        out = bn2.forward(conv2(out), fuseReLU: true)
        out = bn3(conv3(out))
        return Tensor.addRelu(out, shortcut?(x) ?? x)
    }
}

/// ResNeXt for small images (the cloud's advanced classifier): stem, three stages of `n`
/// blocks with cardinality `groups` and bottleneck width `width` doubling per stage, global
/// average pooling and a linear head.
public final class ResNeXt: Module {
    public let stem: Sequential
    public let blocks: Sequential
    public let fc: Linear

    public init(blocksPerStage n: Int, groups: Int, width d: Int, channels: Int = 1, classes: Int = 10) {
        stem = Sequential(Conv2d(channels, 64, kernelSize: 3, padding: 1, bias: false), BatchNorm2d(64), ReLU())
        var layers: [Module] = []
        var cin = 64
        for s in 0..<3 {
            let inner = groups * d << s
            let cout = 4 * inner
            for b in 0..<n {
                layers.append(ResNeXtBlock(inChannels: cin, inner: inner, outChannels: cout,
                                           stride: (s > 0 && b == 0) ? 2 : 1, groups: groups))
                cin = cout
            }
        }
        blocks = Sequential(layers)
        fc = Linear(cin, classes)
    }

    public override func forward(_ x: Tensor) -> Tensor { fc(blocks(stem(x)).globalAvgPool()) }

    /// `resnext-11`: n = 1, G = 8, d = 4 (the CPU default).
    public static func resnext11(channels: Int = 1, classes: Int = 10) -> ResNeXt {
        ResNeXt(blocksPerStage: 1, groups: 8, width: 4, channels: channels, classes: classes)
    }

    /// `resnext-29`: n = 3, G = 32, d = 4 (the paper's cloud model).
    public static func resnext29(channels: Int = 1, classes: Int = 10) -> ResNeXt {
        ResNeXt(blocksPerStage: 3, groups: 32, width: 4, channels: channels, classes: classes)
    }
}
