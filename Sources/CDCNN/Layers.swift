import CDCTensor

/// y = x·Wᵀ + b, weight `[out, in]` (PyTorch's layout and initialisation).
public final class Linear: Module {
    public var weight: Tensor
    public var bias: Tensor?
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        weight = Initialization.uniformFanIn([outFeatures, inFeatures], fanIn: inFeatures)
        self.bias = bias ? Initialization.uniformFanIn([outFeatures], fanIn: inFeatures) : nil
    }
    public override func forward(_ x: Tensor) -> Tensor {
        FlopCounter.add(x.count * weight.shape[0])
        return Tensor.linear(x, weight: weight, bias: bias)
    }
}

/// Layers whose output activation can be computed inside their own kernel.
public protocol ActivationFusable: Module {
    /// Forward with `activation` applied to the output.
    func forward(_ x: Tensor, activation: FusedActivation) -> Tensor
}

/// 2-D convolution, weight `[out, in/groups, kh, kw]`.
public final class Conv2d: Module, ActivationFusable {
    public var weight: Tensor
    public var bias: Tensor?
    public let stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int), groups: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "Conv2d: channels not divisible by groups")
        let fanIn = inChannels / groups * kernelSize * kernelSize
        weight = Initialization.uniformFanIn([outChannels, inChannels / groups, kernelSize, kernelSize], fanIn: fanIn)
        self.bias = bias ? Initialization.uniformFanIn([outChannels], fanIn: fanIn) : nil
        self.stride = (stride, stride); self.padding = (padding, padding); self.dilation = (dilation, dilation)
        self.groups = groups
    }
    public override func forward(_ x: Tensor) -> Tensor { forward(x, activation: .none) }
    public func forward(_ x: Tensor, activation: FusedActivation) -> Tensor {
        let y = Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                              groups: groups, activation: activation)
        FlopCounter.add(y.count * weight.shape[1] * weight.shape[2] * weight.shape[3])
        return y
    }
}

/// 1-D convolution, weight `[out, in/groups, k]`.
public final class Conv1d: Module, ActivationFusable {
    public var weight: Tensor
    public var bias: Tensor?
    public let stride: Int, padding: Int, dilation: Int, groups: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "Conv1d: channels not divisible by groups")
        let fanIn = inChannels / groups * kernelSize
        weight = Initialization.uniformFanIn([outChannels, inChannels / groups, kernelSize], fanIn: fanIn)
        self.bias = bias ? Initialization.uniformFanIn([outChannels], fanIn: fanIn) : nil
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    }
    public override func forward(_ x: Tensor) -> Tensor { forward(x, activation: .none) }
    public func forward(_ x: Tensor, activation: FusedActivation) -> Tensor {
        let y = Tensor.conv1d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                              groups: groups, activation: activation)
        FlopCounter.add(y.count * weight.shape[1] * weight.shape[2])
        return y
    }
}

/// 2-D transposed convolution, weight `[in, out/groups, kh, kw]` (PyTorch's layout).
public final class ConvTranspose2d: Module, ActivationFusable {
    public var weight: Tensor
    public var bias: Tensor?
    public let stride: (Int, Int), padding: (Int, Int), outputPadding: (Int, Int), dilation: (Int, Int), groups: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "ConvTranspose2d: channels not divisible by groups")
        // PyTorch computes fan-in from weight.size(1) · kernel area.
        let fanIn = outChannels / groups * kernelSize * kernelSize
        weight = Initialization.uniformFanIn([inChannels, outChannels / groups, kernelSize, kernelSize], fanIn: fanIn)
        self.bias = bias ? Initialization.uniformFanIn([outChannels], fanIn: fanIn) : nil
        self.stride = (stride, stride); self.padding = (padding, padding)
        self.outputPadding = (outputPadding, outputPadding); self.dilation = (dilation, dilation); self.groups = groups
    }
    public override func forward(_ x: Tensor) -> Tensor { forward(x, activation: .none) }
    public func forward(_ x: Tensor, activation: FusedActivation) -> Tensor {
        FlopCounter.add(x.count * weight.shape[1] * weight.shape[2] * weight.shape[3])
        return Tensor.convTranspose2d(x, weight: weight, bias: bias, stride: stride, padding: padding,
                                      outputPadding: outputPadding, dilation: dilation, groups: groups, activation: activation)
    }
}

/// 1-D transposed convolution, weight `[in, out/groups, k]`.
public final class ConvTranspose1d: Module, ActivationFusable {
    public var weight: Tensor
    public var bias: Tensor?
    public let stride: Int, padding: Int, outputPadding: Int, dilation: Int, groups: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0, "ConvTranspose1d: channels not divisible by groups")
        let fanIn = outChannels / groups * kernelSize
        weight = Initialization.uniformFanIn([inChannels, outChannels / groups, kernelSize], fanIn: fanIn)
        self.bias = bias ? Initialization.uniformFanIn([outChannels], fanIn: fanIn) : nil
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        self.dilation = dilation; self.groups = groups
    }
    public override func forward(_ x: Tensor) -> Tensor { forward(x, activation: .none) }
    public func forward(_ x: Tensor, activation: FusedActivation) -> Tensor {
        FlopCounter.add(x.count * weight.shape[1] * weight.shape[2])
        return Tensor.convTranspose1d(x, weight: weight, bias: bias, stride: stride, padding: padding,
                                      outputPadding: outputPadding, dilation: dilation, groups: groups, activation: activation)
    }
}

/// Batch normalisation over channels (dimension 1) of 2-D, 3-D or 4-D input; `BatchNorm1d`
/// and `BatchNorm2d` are the same layer under PyTorch's two names.
public class BatchNorm: Module {
    public var weight: Tensor
    public var bias: Tensor
    public let runningMean: Buffer
    public let runningVar: Buffer
    public let numBatchesTracked = Counter()
    public let momentum: Float, eps: Float
    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        weight = Tensor.ones([channels], requiresGrad: true)
        bias = Tensor.zeros([channels], requiresGrad: true)
        runningMean = Buffer(Tensor.zeros([channels]))
        runningVar = Buffer(Tensor.ones([channels]))
        self.momentum = momentum; self.eps = eps
    }
    public override func forward(_ x: Tensor) -> Tensor { forward(x, fuseReLU: false) }
    /// Forward, optionally with ReLU applied in the same kernel.
    public func forward(_ x: Tensor, fuseReLU: Bool) -> Tensor {
        if training { numBatchesTracked.value += 1 }
        return Tensor.batchNorm(x, scale: weight, shift: bias, runningMean: runningMean.tensor, runningVar: runningVar.tensor,
                                training: training, momentum: momentum, epsilon: eps, fuseReLU: fuseReLU)
    }
}
/// Batch normalisation of `[N, C]` or `[N, C, L]`.
public final class BatchNorm1d: BatchNorm {}
/// Batch normalisation of `[N, C, H, W]`.
public final class BatchNorm2d: BatchNorm {}

/// max(x, 0).
public final class ReLU: Module { public override func forward(_ x: Tensor) -> Tensor { x.relu() } }
/// LeakyReLU with a negative slope (default 0.01, as PyTorch).
public final class LeakyReLU: Module {
    public let negativeSlope: Float
    public init(_ negativeSlope: Float = 0.01) { self.negativeSlope = negativeSlope }
    public override func forward(_ x: Tensor) -> Tensor { x.leakyRelu(negativeSlope) }
}
/// tanh.
public final class Tanh: Module { public override func forward(_ x: Tensor) -> Tensor { x.tanh() } }
/// Logistic sigmoid.
public final class Sigmoid: Module { public override func forward(_ x: Tensor) -> Tensor { x.sigmoid() } }
/// Passes its input through.
public final class Identity: Module { public override func forward(_ x: Tensor) -> Tensor { x } }
/// Flattens all dimensions after the batch dimension.
public final class Flatten: Module { public override func forward(_ x: Tensor) -> Tensor { x.flatten() } }

/// Randomly zeroes elements in training mode (seeded by ``GlobalRandom``).
public final class Dropout: Module {
    public let p: Float
    public init(_ p: Float = 0.5) { self.p = p }
    public override func forward(_ x: Tensor) -> Tensor {
        GlobalRandom.with { x.dropout(p, training: training, generator: &$0) }
    }
}

/// 2-D max pooling (stride defaults to the kernel size).
public final class MaxPool2d: Module {
    public let kernel: Int, stride: Int, padding: Int
    public init(_ kernel: Int, stride: Int? = nil, padding: Int = 0) { self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding }
    public override func forward(_ x: Tensor) -> Tensor { x.maxPool2d(kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding)) }
}
/// 2-D average pooling.
public final class AvgPool2d: Module {
    public let kernel: Int, stride: Int, padding: Int
    public init(_ kernel: Int, stride: Int? = nil, padding: Int = 0) { self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding }
    public override func forward(_ x: Tensor) -> Tensor { x.avgPool2d(kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding)) }
}
/// 1-D max pooling.
public final class MaxPool1d: Module {
    public let kernel: Int, stride: Int, padding: Int
    public init(_ kernel: Int, stride: Int? = nil, padding: Int = 0) { self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding }
    public override func forward(_ x: Tensor) -> Tensor { x.maxPool1d(kernel: kernel, stride: stride, padding: padding) }
}
/// 1-D average pooling.
public final class AvgPool1d: Module {
    public let kernel: Int, stride: Int, padding: Int
    public init(_ kernel: Int, stride: Int? = nil, padding: Int = 0) { self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding }
    public override func forward(_ x: Tensor) -> Tensor { x.avgPool1d(kernel: kernel, stride: stride, padding: padding) }
}
/// Global average pooling to `[N, C]` (PyTorch's `AdaptiveAvgPool(1)` followed by `Flatten`).
public final class GlobalAvgPool: Module { public override func forward(_ x: Tensor) -> Tensor { x.globalAvgPool() } }

/// Runs its layers in order; children are named "0", "1", … as in PyTorch. A convolution
/// directly followed by ReLU/LeakyReLU/Tanh, or a BatchNorm followed by ReLU, runs as one
/// fused kernel (same result, one pass over memory fewer).
public final class Sequential: Module {
    public let layers: [Module]
    public init(_ layers: [Module]) { self.layers = layers }
    public convenience init(_ layers: Module...) { self.init(layers) }
    /// The layers, named "0", "1", … (PyTorch's `Sequential` naming, no property prefix).
    public override func children() -> [(String, Module)] { layers.enumerated().map { ("\($0.offset)", $0.element) } }
    public override func forward(_ x: Tensor) -> Tensor {
        var h = x
        var i = 0
        while i < layers.count {
            let layer = layers[i]
            let next = i + 1 < layers.count ? layers[i + 1] : nil
            if let f = layer as? ActivationFusable, let act = Sequential.fusable(next) {
                h = f.forward(h, activation: act); i += 2; continue
            }
            if let bn = layer as? BatchNorm, next is ReLU {
                h = bn.forward(h, fuseReLU: true); i += 2; continue
            }
            h = layer(h); i += 1
        }
        return h
    }
    static func fusable(_ m: Module?) -> FusedActivation? {
        if m is ReLU { return .relu }
        if let l = m as? LeakyReLU, l.negativeSlope >= 0 { return .leakyRelu(l.negativeSlope) }
        if m is Tanh { return .tanh }
        return nil
    }
}
