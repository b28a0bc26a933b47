/// Shapes of a 2-D convolution over NCHW data (1-D convolutions use height 1).
///
/// A transposed convolution is described by the geometry of the convolution it is the
/// transpose of: its input is that convolution's output and vice versa.
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int, inChannels: Int, height: Int, width: Int
    public var outChannels: Int, kernelH: Int, kernelW: Int
    public var strideH: Int, strideW: Int, padH: Int, padW: Int
    public var dilationH: Int, dilationW: Int, groups: Int
    /// Extra rows/columns at the bottom/right that a transposed convolution's output has
    /// beyond what `inputHeight` fits (PyTorch's `output_padding`); zero for a plain conv.
    public var padBottom: Int, padRight: Int

    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int,
                kernelH: Int, kernelW: Int, strideH: Int = 1, strideW: Int = 1, padH: Int = 0, padW: Int = 0,
                dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1, padBottom: Int? = nil, padRight: Int? = nil) {
        self.batch = batch; self.inChannels = inChannels; self.height = height; self.width = width
        self.outChannels = outChannels; self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW; self.padH = padH; self.padW = padW
        self.dilationH = dilationH; self.dilationW = dilationW; self.groups = groups
        self.padBottom = padBottom ?? padH; self.padRight = padRight ?? padW
    }

    /// Output height.
    public var outHeight: Int { (height + padH + padBottom - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    /// Output width.
    public var outWidth: Int { (width + padW + padRight - dilationW * (kernelW - 1) - 1) / strideW + 1 }
    /// Input channels per group.
    public var inPerGroup: Int { inChannels / groups }
    /// Output channels per group.
    public var outPerGroup: Int { outChannels / groups }
    /// Input shape [N, C, H, W].
    public var inputShape: [Int] { [batch, inChannels, height, width] }
    /// Output shape [N, O, OH, OW].
    public var outputShape: [Int] { [batch, outChannels, outHeight, outWidth] }
    /// Weight shape [O, C/groups, KH, KW].
    public var weightShape: [Int] { [outChannels, inPerGroup, kernelH, kernelW] }

    /// Checks that the numbers make a valid convolution; returns a message naming the problem.
    public func validate() -> String? {
        if batch < 1 || inChannels < 1 || outChannels < 1 || height < 1 || width < 1 { return "sizes must be positive: \(self)" }
        if groups < 1 || inChannels % groups != 0 || outChannels % groups != 0 {
            return "channels \(inChannels)→\(outChannels) are not divisible by groups \(groups)"
        }
        if strideH < 1 || strideW < 1 || dilationH < 1 || dilationW < 1 { return "stride and dilation must be ≥ 1" }
        if padH < 0 || padW < 0 || padBottom <= -max(strideH, dilationH) || padRight <= -max(strideW, dilationW) {
            return "padding must be ≥ 0"
        }
        if outHeight < 1 || outWidth < 1 { return "kernel larger than padded input: \(self)" }
        return nil
    }

    public var description: String {
        "conv(N\(batch) C\(inChannels) \(height)x\(width) → O\(outChannels) k\(kernelH)x\(kernelW) s\(strideH),\(strideW) p\(padH),\(padW),\(padBottom),\(padRight) d\(dilationH),\(dilationW) g\(groups))"
    }
}

/// Shapes of a 2-D pooling over NCHW data.
public struct PoolGeometry: Hashable, Sendable {
    public var batch: Int, channels: Int, height: Int, width: Int
    public var kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padH: Int, padW: Int

    public init(batch: Int, channels: Int, height: Int, width: Int, kernelH: Int, kernelW: Int,
                strideH: Int, strideW: Int, padH: Int = 0, padW: Int = 0) {
        self.batch = batch; self.channels = channels; self.height = height; self.width = width
        self.kernelH = kernelH; self.kernelW = kernelW; self.strideH = strideH; self.strideW = strideW
        self.padH = padH; self.padW = padW
    }

    /// Output height (floor mode, as PyTorch's default).
    public var outHeight: Int { (height + 2 * padH - kernelH) / strideH + 1 }
    /// Output width.
    public var outWidth: Int { (width + 2 * padW - kernelW) / strideW + 1 }
    public var inputShape: [Int] { [batch, channels, height, width] }
    public var outputShape: [Int] { [batch, channels, outHeight, outWidth] }
    /// Padding at the bottom/right that oneDNN needs so its output size equals floor mode.
    var padBottom: Int { (outHeight - 1) * strideH + kernelH - height - padH }
    var padRight: Int { (outWidth - 1) * strideW + kernelW - width - padW }
}
