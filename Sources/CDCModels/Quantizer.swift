import CDCNN
import CDCTensor

/// The CDC quantizer with mask number m ∈ 0…4 and L = 2^(4−m) levels per sign.
///
/// Training: `q = clamp(ceil(x·L + u), −L+1, L)`, u ~ U(−½, ½), with dq/dx taken as L
/// everywhere (straight through, also where the clamp binds). Inference:
/// `q = clamp(ceil(x·L), −L+1, L)` as an integer symbol. Either way the decoder receives the
/// restored value `x̂ = (q − ½)/L`, so the gradient of x̂ with respect to x is exactly 1.
/// Each symbol needs `5 − m` bits.
public final class Quantizer: Module {
    /// Mask number m.
    public let mask: Int
    /// Levels per sign, 2^(4−m).
    public var levels: Int { 1 << (4 - mask) }
    /// Bits per symbol before entropy coding.
    public var bitsPerSymbol: Int { 5 - mask }

    public init(mask: Int) {
        precondition((0...4).contains(mask), "mask m must be in 0...4, got \(mask)")
        self.mask = mask
    }

    /// x̂ from x: noisy in training mode (seeded by ``GlobalRandom``), deterministic otherwise.
    public override func forward(_ x: Tensor) -> Tensor {
        let L = Float(levels)
        let out = Tensor.empty(x.shape)
        let px = x.plain.pointer, po = out.mutablePointer, n = x.count
        if training {
            GlobalRandom.with { g in
                for i in 0..<n {
                    let q = Swift.min(Swift.max((px[i] * L + g.nextUniform() - 0.5).rounded(.up), 1 - L), L)
                    po[i] = (q - 0.5) / L
                }
            }
        } else {
            for i in 0..<n { po[i] = (Swift.min(Swift.max((px[i] * L).rounded(.up), 1 - L), L) - 0.5) / L }
        }
        // dq/dx = L and dx̂/dq = 1/L: the gradient passes through unchanged.
        return out.withCustomGradient("quantize", inputs: [x]) { g in [g] }
    }

    /// Integer symbols in −L+1…L of latent values (inference rule).
    public func symbols(_ latent: Tensor) -> [Int8] {
        let L = Float(levels)
        let p = latent.plain.pointer, n = latent.count
        return [Int8](unsafeUninitializedCapacity: n) { out, initialized in
            for i in 0..<n { out[i] = Int8(Swift.min(Swift.max((p[i] * L).rounded(.up), 1 - L), L)) }
            initialized = n
        }
    }

    /// Restored latent values x̂ = (q − ½)/L for symbols of the given shape.
    public func restore(_ symbols: [Int8], shape: [Int]) -> Tensor {
        let L = Float(levels)
        return Tensor(symbols.map { (Float($0) - 0.5) / L }, shape: shape)
    }
}

