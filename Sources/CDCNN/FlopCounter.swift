import CDCTensor

/// Counts forward FLOPs (2 × multiply-adds) of convolution, transposed convolution and linear
/// layers, as the PyTorch reference counts them: conv `out_elements · C_in/groups · k`,
/// conv-transpose `in_elements · C_out/groups · k`, linear `in_elements · out_features`.
///
///     let flops = FlopCounter.count { _ = model(sample) }
public final class FlopCounter: @unchecked Sendable {
    @TaskLocal static var current: FlopCounter?
    private(set) var macs = 0

    /// FLOPs of everything `body` runs through the counted layers.
    public static func count(_ body: () -> Void) -> Int {
        let c = FlopCounter()
        $current.withValue(c) { Autograd.noGrad { body() } }
        return 2 * c.macs
    }

    /// Adds `macs` multiply-accumulates to the count in progress (for layers outside this module).
    public static func add(_ macs: Int) { current?.macs += macs }
}
