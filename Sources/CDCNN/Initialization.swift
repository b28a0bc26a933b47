import CDCTensor

/// Parameter initialisation matching PyTorch's defaults.
public enum Initialization {
    /// U(−1/√fanIn, 1/√fanIn): PyTorch's default for Linear and convolution weights
    /// (`kaiming_uniform_(a=√5)`) and for their biases.
    public static func uniformFanIn(_ shape: [Int], fanIn: Int) -> Tensor {
        let bound = fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0
        return GlobalRandom.with { Tensor.uniform(shape, low: -bound, high: bound, generator: &$0, requiresGrad: true) }
    }

    /// Kaiming (He) normal initialisation, std = √(2/fanIn) (for ReLU networks).
    public static func kaimingNormal(_ shape: [Int], fanIn: Int) -> Tensor {
        GlobalRandom.with { Tensor.normal(shape, std: (2 / Float(fanIn)).squareRoot(), generator: &$0, requiresGrad: true) }
    }
}
