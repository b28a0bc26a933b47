/// Plain Swift implementations of the heavy ops: slow, short and obviously correct.
/// They are the oracle the oneDNN kernels are tested against and run when
/// ``Engine/backend`` is `.reference`.
public enum ReferenceKernels {
    // MARK: Convolution

    /// Calls `body(inputIndex, weightIndex, outputIndex)` for every product of the convolution:
    /// y[n, o, i, j] += x[n, c, i·s − p + kh·d, j·s − p + kw·d] · w[o, c − group·C/G, kh, kw].
    /// The three convolution kernels below are this loop with a different update.
    static func forEachTap(_ g: ConvGeometry, _ body: (Int, Int, Int) -> Void) {
        let (oh, ow, cg, og) = (g.outHeight, g.outWidth, g.inPerGroup, g.outPerGroup)
        for n in 0..<g.batch {
            for o in 0..<g.outChannels {
                let group = o / og
                for i in 0..<oh {
                    for j in 0..<ow {
                        let yi = ((n * g.outChannels + o) * oh + i) * ow + j
                        for c in 0..<cg {
                            let ic = group * cg + c
                            for kh in 0..<g.kernelH {
                                let ih = i * g.strideH - g.padH + kh * g.dilationH
                                if ih < 0 || ih >= g.height { continue }
                                for kw in 0..<g.kernelW {
                                    let iw = j * g.strideW - g.padW + kw * g.dilationW
                                    if iw < 0 || iw >= g.width { continue }
                                    body(((n * g.inChannels + ic) * g.height + ih) * g.width + iw,
                                         ((o * cg + c) * g.kernelH + kh) * g.kernelW + kw, yi)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// y = x ⋆ w (+ bias[o]).
    public static func convForward(_ g: ConvGeometry, input x: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                   bias: UnsafePointer<Float>?, output y: UnsafeMutablePointer<Float>) {
        let plane = g.outHeight * g.outWidth
        for n in 0..<g.batch { for o in 0..<g.outChannels {
            (y + (n * g.outChannels + o) * plane).update(repeating: bias?[o] ?? 0, count: plane)
        } }
        forEachTap(g) { xi, wi, yi in y[yi] += x[xi] * w[wi] }
    }

    /// dx = the transpose of ``convForward`` applied to dy (overwrites dx).
    public static func convBackwardData(_ g: ConvGeometry, gradOutput dy: UnsafePointer<Float>,
                                        weight w: UnsafePointer<Float>, gradInput dx: UnsafeMutablePointer<Float>) {
        dx.update(repeating: 0, count: g.batch * g.inChannels * g.height * g.width)
        forEachTap(g) { xi, wi, yi in dx[xi] += dy[yi] * w[wi] }
    }

    /// dw = Σ dy · x (overwrites dw); db = Σ dy over N, H, W when given.
    public static func convBackwardWeights(_ g: ConvGeometry, input x: UnsafePointer<Float>,
                                           gradOutput dy: UnsafePointer<Float>,
                                           gradWeight dw: UnsafeMutablePointer<Float>,
                                           gradBias db: UnsafeMutablePointer<Float>?) {
        dw.update(repeating: 0, count: g.outChannels * g.inPerGroup * g.kernelH * g.kernelW)
        forEachTap(g) { xi, wi, yi in dw[wi] += dy[yi] * x[xi] }
        if let db {
            let plane = g.outHeight * g.outWidth
            for o in 0..<g.outChannels {
                var s: Float = 0
                for n in 0..<g.batch { for k in 0..<plane { s += dy[(n * g.outChannels + o) * plane + k] } }
                db[o] = s
            }
        }
    }

    // MARK: Pooling

    /// Max pooling (padding counts as −∞). Ties go to the first element in scan order.
    public static func maxPoolForward(_ g: PoolGeometry, input x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>) {
        poolWindows(g) { plane, out, window in
            var best = -Float.infinity
            for idx in window where x[plane + idx] > best { best = x[plane + idx] }
            y[out] = best
        }
    }

    /// Routes each output gradient to its window's maximum (overwrites dx).
    public static func maxPoolBackward(_ g: PoolGeometry, input x: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                                       gradInput dx: UnsafeMutablePointer<Float>) {
        dx.update(repeating: 0, count: g.batch * g.channels * g.height * g.width)
        poolWindows(g) { plane, out, window in
            var best = -Float.infinity, arg = -1
            for idx in window where x[plane + idx] > best { best = x[plane + idx]; arg = idx }
            if arg >= 0 { dx[plane + arg] += dy[out] }
        }
    }

    /// Average pooling; the divisor counts padded positions when `countIncludePad` (PyTorch's default).
    public static func avgPoolForward(_ g: PoolGeometry, countIncludePad: Bool, input x: UnsafePointer<Float>,
                                      output y: UnsafeMutablePointer<Float>) {
        poolWindows(g) { plane, out, window in
            var s: Float = 0
            for idx in window { s += x[plane + idx] }
            y[out] = s / Float(countIncludePad ? g.kernelH * g.kernelW : window.count)
        }
    }

    /// Spreads each output gradient evenly over its window (overwrites dx).
    public static func avgPoolBackward(_ g: PoolGeometry, countIncludePad: Bool, gradOutput dy: UnsafePointer<Float>,
                                       gradInput dx: UnsafeMutablePointer<Float>) {
        dx.update(repeating: 0, count: g.batch * g.channels * g.height * g.width)
        poolWindows(g) { plane, out, window in
            let share = dy[out] / Float(countIncludePad ? g.kernelH * g.kernelW : window.count)
            for idx in window { dx[plane + idx] += share }
        }
    }

    /// Calls `body(planeOffset, outputIndex, inPlaneIndices)` for every pooling window.
    private static func poolWindows(_ g: PoolGeometry, _ body: (Int, Int, [Int]) -> Void) {
        let (oh, ow) = (g.outHeight, g.outWidth)
        var window: [Int] = []
        window.reserveCapacity(g.kernelH * g.kernelW)
        for p in 0..<(g.batch * g.channels) {
            for i in 0..<oh {
                for j in 0..<ow {
                    window.removeAll(keepingCapacity: true)
                    for kh in 0..<g.kernelH {
                        let ih = i * g.strideH - g.padH + kh
                        if ih < 0 || ih >= g.height { continue }
                        for kw in 0..<g.kernelW {
                            let iw = j * g.strideW - g.padW + kw
                            if iw < 0 || iw >= g.width { continue }
                            window.append(ih * g.width + iw)
                        }
                    }
                    body(p * g.height * g.width, (p * oh + i) * ow + j, window)
                }
            }
        }
    }

    // MARK: Batch normalisation

    /// Per-channel statistics over N and spatial positions: mean and biased variance.
    public static func channelStats(_ x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int,
                                    mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>) {
        let m = Double(batch * spatial)
        for c in 0..<channels {
            var s = 0.0
            for n in 0..<batch { for k in 0..<spatial { s += Double(x[(n * channels + c) * spatial + k]) } }
            let mu = s / m
            var v = 0.0
            for n in 0..<batch { for k in 0..<spatial { let d = Double(x[(n * channels + c) * spatial + k]) - mu; v += d * d } }
            mean[c] = Float(mu); variance[c] = Float(v / m)
        }
    }

    /// y = (x − mean)/√(var + eps) · scale + shift.
    public static func batchNormForward(_ x: UnsafePointer<Float>, batch: Int, channels: Int, spatial: Int,
                                        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>,
                                        scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, epsilon: Float,
                                        output y: UnsafeMutablePointer<Float>) {
        for c in 0..<channels {
            let inv = 1 / (variance[c] + epsilon).squareRoot()
            for n in 0..<batch {
                for k in 0..<spatial {
                    let i = (n * channels + c) * spatial + k
                    y[i] = (x[i] - mean[c]) * inv * scale[c] + shift[c]
                }
            }
        }
    }

    /// Backward of training-mode batch norm (statistics from the batch):
    /// dx, dscale, dshift from dy, x and the batch mean/variance.
    public static func batchNormBackward(_ x: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                                         batch: Int, channels: Int, spatial: Int,
                                         mean: UnsafePointer<Float>, variance: UnsafePointer<Float>,
                                         scale: UnsafePointer<Float>, epsilon: Float,
                                         gradInput dx: UnsafeMutablePointer<Float>,
                                         gradScale: UnsafeMutablePointer<Float>, gradShift: UnsafeMutablePointer<Float>) {
        let m = Float(batch * spatial)
        for c in 0..<channels {
            let inv = 1 / (variance[c] + epsilon).squareRoot()
            var sdy: Float = 0, sdyx: Float = 0
            for n in 0..<batch {
                for k in 0..<spatial {
                    let i = (n * channels + c) * spatial + k
                    sdy += dy[i]; sdyx += dy[i] * (x[i] - mean[c]) * inv
                }
            }
            gradShift[c] = sdy; gradScale[c] = sdyx
            for n in 0..<batch {
                for k in 0..<spatial {
                    let i = (n * channels + c) * spatial + k
                    let xh = (x[i] - mean[c]) * inv
                    dx[i] = scale[c] * inv * (dy[i] - sdy / m - xh * sdyx / m)
                }
            }
        }
    }
}
