import CDCNN
import CDCTensor
import Foundation

/// A learned factorized prior over the quantizer's symbols: each latent channel has its own
/// distribution, independent of position and of the other channels, that the entropy coder
/// uses to code that channel's symbols.
///
/// The density lives in the latent's domain (−1, 1) (the encoder's tanh output z, where the
/// restored values x̂ = (q − ½)/L are the bin centres), so one prior serves every mask m: the
/// probability of symbol q at mask m (L = 2^(4−m) levels per sign) is the mass of its bin
/// ((q − 1)/L, q/L], `c(x̂ + 1/2L) − c(x̂ − 1/2L)`, with the two outer bins running to ∓∞. Each channel's CDF `c` is a mixture of `components` logistic CDFs with
/// learned weights, means and scales. CompressAI's `EntropyBottleneck` learns the same kind of
/// per-channel CDF with a small monotone network; a logistic mixture is the lighter form of it.
///
/// Training adds the rate R, the expected code length of the symbols under the training
/// quantizer's noise (``bits(_:levels:)``), to the autoencoder's loss with a weight λ, so the
/// encoder learns codes that are cheap to code. The integer frequency tables the coder uses
/// (``frequencyTables(mask:total:)``) are made once from the trained parameters and saved with
/// the model (`PriorFile` in CDCPipeline), never recomputed from floating point at load.
public final class FactorizedPrior: Module {
    /// Mixture weights before the softmax, `[K, components]`.
    public var logits: Tensor
    /// Component means in the latent domain, `[K, components]`.
    public var means: Tensor
    /// Log of the logistic scales, `[K, components]`.
    public var logScales: Tensor
    public let channels: Int, components: Int

    public init(channels: Int, components: Int = 3) {
        precondition(channels >= 1 && components >= 1)
        self.channels = channels; self.components = components
        logits = Tensor([Float](repeating: 0, count: channels * components), shape: [channels, components], requiresGrad: true)
        // Means spread over (−1, 1), scales wide enough that every bin starts with some mass.
        let spread = (0..<components).map { components == 1 ? 0 : Float(-0.5 + Double($0) / Double(components - 1)) }
        means = Tensor((0..<channels).flatMap { _ in spread }, shape: [channels, components], requiresGrad: true)
        logScales = Tensor([Float](repeating: Foundation.log(0.25), count: channels * components), shape: [channels, components],
                           requiresGrad: true)
    }

    /// Per-channel parameter column k as a tensor broadcastable against `[N, K, …]` of the given rank.
    func column(_ t: Tensor, _ k: Int, rank: Int) -> Tensor {
        t.slice(axis: 1, k..<(k + 1)).reshape([1, channels] + [Int](repeating: 1, count: rank - 2))
    }

    /// The mixture CDF of each element's channel, evaluated at `t` (`[N, K, …]`).
    func cdf(_ t: Tensor, weights: Tensor) -> Tensor {
        var out: Tensor?
        for k in 0..<components {
            let z = (t - column(means, k, rank: t.rank)) * (-column(logScales, k, rank: t.rank)).exp()
            let term = z.sigmoid() * column(weights, k, rank: t.rank)
            out = out.map { $0 + term } ?? term
        }
        return out!
    }

    /// Expected code length in bits of the symbols of encoder outputs `z` (`[N, K, …]`) under the
    /// training quantizer's noise, summed: a scalar tensor differentiable with respect to `z` and
    /// the prior's parameters.
    ///
    /// With s = z·L, the noisy quantizer gives q = ceil(s + u), u ~ U(−½, ½): symbol k₀ = ⌈s − ½⌉
    /// with probability w = k₀ − (s − ½) and k₀ + 1 otherwise (clamped to −L+1…L). The expected
    /// code length w·(−log₂ P(k₀)) + (1 − w)·(−log₂ P(k₀ + 1)) is exact, not a relaxation; its
    /// gradient L·(log₂ P(k₀) − log₂ P(k₀ + 1)) moves z towards the cheaper symbol, and the
    /// parameters' gradient moves the symbols' probabilities P (bin masses of the CDF, as in
    /// ``probabilities(mask:)``) towards the symbols used. At the restored values (q − ½)/L it is
    /// exactly the code length of the symbols q.
    public func bits(_ z: Tensor, levels: Int) -> Tensor {
        precondition(z.rank >= 2 && z.shape[1] == channels, "prior: expected [N, \(channels), …], got \(z.shape)")
        let L = Float(levels)
        let n = z.count, values = z.plain.pointer
        var anchor = [Float](repeating: 0, count: n)          // k₀ + ½, so that w = anchor − s
        var edges = [[Float]](repeating: [Float](repeating: 0, count: n), count: 4)   // lo₀, hi₀, lo₁, hi₁
        var tails = [[Float]](repeating: [Float](repeating: 0, count: n), count: 4)   // k₀ lowest, k₀ highest, k₁ …
        for i in 0..<n {
            let k0 = (values[i] * L - 0.5).rounded(.up)
            anchor[i] = k0 + 0.5
            for (j, k) in [Swift.min(Swift.max(k0, 1 - L), L), Swift.min(Swift.max(k0 + 1, 1 - L), L)].enumerated() {
                edges[2 * j][i] = (k - 1) / L; edges[2 * j + 1][i] = k / L
                tails[2 * j][i] = k == 1 - L ? 1 : 0; tails[2 * j + 1][i] = k == L ? 1 : 0
            }
        }
        let weights = logits.logSoftmax().exp()
        func codeLength(_ j: Int) -> Tensor {
            let lowTail = Tensor(tails[2 * j], shape: z.shape), highTail = Tensor(tails[2 * j + 1], shape: z.shape)
            let upper = cdf(Tensor(edges[2 * j + 1], shape: z.shape), weights: weights) * (1 - highTail) + highTail
            let lower = cdf(Tensor(edges[2 * j], shape: z.shape), weights: weights) * (1 - lowTail)
            return (upper - lower).clamp(1e-9, 1).log() * Float(-1 / Foundation.log(2.0))
        }
        let w = Tensor(anchor, shape: z.shape) - z * L
        return (w * codeLength(0) + (1 - w) * codeLength(1)).sum()
    }

    /// Probability of every symbol of every channel at mask m, `[K][2L]`, symbol u = q + L − 1
    /// (the container's unsigned form), computed in double precision.
    public func probabilities(mask: Int) -> [[Double]] {
        precondition((0...4).contains(mask))
        let L = 1 << (4 - mask), half = 0.5 / Double(L)
        let lg = logits.values, mu = means.values, ls = logScales.values
        return (0..<channels).map { c in
            let row = (0..<components).map { Double(lg[c * components + $0]) }
            let mx = row.max()!, ex = row.map { Foundation.exp($0 - mx) }, sum = ex.reduce(0, +)
            func cdf(_ t: Double) -> Double {
                (0..<components).reduce(0) { acc, k in
                    let z = (t - Double(mu[c * components + k])) * Foundation.exp(-Double(ls[c * components + k]))
                    return acc + ex[k] / sum / (1 + Foundation.exp(-z))
                }
            }
            return (0..<(2 * L)).map { u in
                let xHat = (Double(u - L + 1) - 0.5) / Double(L)
                let hi = u == 2 * L - 1 ? 1 : cdf(xHat + half), lo = u == 0 ? 0 : cdf(xHat - half)
                return max(hi - lo, 0)
            }
        }
    }

    /// Integer frequency tables for the entropy coder at mask m: per channel, 2L counts ≥ 1
    /// summing to `total` (the probabilities rounded, the rounding error given to the most
    /// likely symbol). Made on the edge once and shipped as integers.
    public func frequencyTables(mask: Int, total: Int = 1 << 16) -> [[UInt32]] {
        probabilities(mask: mask).map { Self.quantize($0, total: total) }
    }

    /// Deterministic rounding of probabilities to positive integer counts summing to `total`.
    public static func quantize(_ p: [Double], total: Int) -> [UInt32] {
        precondition(total >= p.count && !p.isEmpty)
        let s = p.reduce(0, +)
        var f = p.map { max(1, Int(($0 / (s > 0 ? s : 1) * Double(total - p.count)).rounded())) }
        var diff = total - f.reduce(0, +)
        // Give (or take) the difference to (from) the largest counts, never below 1.
        while diff != 0 {
            let i = f.indices.max { f[$0] < f[$1] }!
            let step = diff > 0 ? diff : max(diff, 1 - f[i])
            if step == 0 { break }
            f[i] += step; diff -= step
        }
        precondition(f.reduce(0, +) == total, "quantize: cannot fit \(p.count) symbols into \(total)")
        return f.map { UInt32($0) }
    }
}
