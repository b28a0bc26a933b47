import Foundation
import Testing
@testable import CDCTensor

// The bf16-emulated precision against the fp32 reference backend, with a tolerance derived from
// bfloat16's 8-bit significand (unit roundoff u = 2⁻⁸):
//
// * a product of two rounded operands has relative error ≤ 2u + u², and the sum of such products
//   (accumulated in float32) is off by at most (2u + u²)·Σ|a||b|; a rounded output adds u·|value|.
// * So |y_bf16 − y_fp32| ≤ 2.01u·B + 1.01u·|y_fp32| + 10⁻⁴·B, where B = Σ|a||b| is the same op
//   evaluated on absolute values (computed exactly by the reference backend), and the last term
//   bounds float32 accumulation over at most a few hundred terms.
//
// The same bound holds for each gradient: the input gradient pairs the (rounded) output gradient
// with the rounded weight and is rounded itself; the weight gradient pairs the rounded input with
// the rounded output gradient and stays float32 (no output rounding term).

/// bfloat16's unit roundoff.
let bf16U: Float = 1.0 / 256

/// Whether every value is exactly representable in bfloat16 (its low 16 bits are zero).
func allBF16(_ v: [Float]) -> Bool { v.allSatisfy { $0.bitPattern & 0xFFFF == 0 } }

/// The first index where `got` is outside the derived bound around `ref`, with the numbers.
func bf16BoundViolation(_ got: [Float], _ ref: [Float], abs bound: [Float], roundedOutput: Bool) -> String? {
    precondition(got.count == ref.count && ref.count == bound.count)
    for i in ref.indices {
        let tol = 2.01 * bf16U * bound[i] + (roundedOutput ? 1.01 * bf16U * Swift.abs(ref[i]) : 0) + 1e-4 * bound[i] + 1e-30
        if Swift.abs(got[i] - ref[i]) > tol {
            return "index \(i): bf16 \(got[i]), fp32 \(ref[i]), |Δ| \(Swift.abs(got[i] - ref[i])) > \(tol) (B = \(bound[i]))"
        }
    }
    return nil
}

/// Values, gradients of every input, under a seed gradient `g`.
struct OpRun { var y: [Float]; var grads: [[Float]] }

func runOp(_ inputs: [Tensor], seed g: Tensor, _ f: ([Tensor]) -> Tensor) -> OpRun {
    let leaves = inputs.map { TestData.leaf($0) }
    let y = f(leaves)
    y.backward(g)
    return OpRun(y: y.values, grads: leaves.map { $0.grad!.values })
}

@Suite("bf16: rounding")
struct BF16RoundingTests {
    @Test func roundsToNearestEven() {
        let one: Float = 1
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even significand (1).
        #expect(BF16.round(one + 1.0 / 256) == 1)
        // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶ (even).
        #expect(BF16.round(one + 3.0 / 256) == one + 1.0 / 64)
        // Just above the halfway point rounds up.
        #expect(BF16.round(Float(bitPattern: (one + 1.0 / 256).bitPattern + 1)) == one + 1.0 / 128)
        #expect(BF16.round(-2.5) == -2.5)
        #expect(BF16.round(.infinity) == .infinity)
        #expect(BF16.round(0) == 0)
        #expect(BF16.round(.nan).isNaN)
        // The largest float rounds to infinity, as in hardware conversion.
        #expect(BF16.round(.greatestFiniteMagnitude) == .infinity)
    }

    @Test func bufferRoundingMatchesScalar() {
        let x = TestData.normal([4099], seed: 5, std: 100)
        var v = x.values
        v[7] = .nan; v[8] = -.infinity; v[9] = Float(bitPattern: 0x0000_8001) // a subnormal
        let t = Tensor(v, shape: [v.count])
        BF16.roundInPlace(t.mutablePointer, count: t.count)
        let got = t.values
        for i in v.indices {
            if v[i].isNaN { #expect(got[i].isNaN); continue }
            #expect(got[i].bitPattern == BF16.round(v[i]).bitPattern, "index \(i)")
            // Relative error at most u (subnormals: at most half of bf16's smallest step, 2⁻¹³³).
            #expect(Swift.abs(got[i] - v[i]) <= bf16U * Swift.abs(v[i]) || v[i].isInfinite
                        || (v[i].isSubnormal && Swift.abs(got[i] - v[i]) <= Float(sign: .plus, exponent: -134, significand: 1)), "index \(i)")
        }
    }

    @Test func precisionSettingRefusesMissingKernelsWithTheReason() throws {
        // This engine runs bf16 only emulated: native bf16 is refused, naming the CPU's instruction set.
        #expect(throws: PrecisionError.self) { try Engine.setPrecision(.bf16) }
        do { try Engine.setPrecision(.bf16) } catch {
            #expect("\(error)".contains(EngineInfo.cpuISA))
        }
        #expect(Engine.precision == .fp32)
    }
}

@Suite("bf16: convolutions and linear layers against the fp32 reference")
struct BF16SweepTests {
    /// The op in bf16-emulated (oneDNN) and fp32 (reference), the bound from the absolute values.
    func check(_ label: String, inputs: [Tensor], seedShape: [Int]? = nil, _ f: @escaping ([Tensor]) -> Tensor) {
        let outShape = seedShape ?? Engine.withBackend(.reference) { Autograd.noGrad { f(inputs) } }.shape
        let g = TestData.normal(outShape, seed: 77)
        let emulated = onBackend(.onednn) { Engine.withPrecision(.bf16Emulated) { runOp(inputs, seed: g, f) } }
        let fp32 = onBackend(.onednn) { runOp(inputs, seed: g, f) }
        let ref = onBackend(.reference) { runOp(inputs, seed: g, f) }
        let absInputs = inputs.map { Tensor($0.values.map { Swift.abs($0) }, shape: $0.shape) }
        let absSeed = Tensor(g.values.map { Swift.abs($0) }, shape: g.shape)
        let bound = onBackend(.reference) { runOp(absInputs, seed: absSeed, f) }

        #expect(allBF16(emulated.y), "\(label): bf16 output not rounded to bf16")
        #expect(allBF16(emulated.grads[0]), "\(label): bf16 input gradient not rounded to bf16")
        // The emulation really changes something (else the bound test proves nothing).
        #expect(emulated.y != fp32.y, "\(label): bf16 output identical to fp32")
        if let v = bf16BoundViolation(emulated.y, ref.y, abs: bound.y, roundedOutput: true) {
            Issue.record("\(label) output: \(v)")
        }
        for (i, name) in ["input", "weight", "bias"].prefix(inputs.count).enumerated() {
            if let v = bf16BoundViolation(emulated.grads[i], ref.grads[i], abs: bound.grads[i], roundedOutput: i == 0) {
                Issue.record("\(label) \(name) gradient: \(v)")
            }
        }
    }

    @Test(arguments: Sweeps.conv2d.filter { $0.act == .none })
    func conv2d(_ c: ConvSweepCase) { check("conv2d \(c.testDescription)", inputs: c.conv2dInputs(seed: 11), c.conv2d) }

    @Test(arguments: Sweeps.convT2d.filter { $0.act == .none })
    func convTranspose2d(_ c: ConvSweepCase) {
        check("convT2d \(c.testDescription)", inputs: c.convT2dInputs(seed: 12), c.convT2d)
    }

    @Test(arguments: Sweeps.conv1d.filter { $0.act == .none })
    func conv1d(_ c: ConvSweepCase) { check("conv1d \(c.testDescription)", inputs: c.conv1dInputs(seed: 13), c.conv1d) }

    @Test(arguments: Sweeps.convT1d.filter { $0.act == .none })
    func convTranspose1d(_ c: ConvSweepCase) {
        check("convT1d \(c.testDescription)", inputs: c.convT1dInputs(seed: 14), c.convT1d)
    }

    @Test(arguments: [(5, 7, 3), (32, 64, 10), (1, 300, 17)])
    func linear(_ n: Int, _ inF: Int, _ outF: Int) {
        let inputs = [TestData.normal([n, inF], seed: 21), TestData.normal([outF, inF], seed: 22), TestData.normal([outF], seed: 23)]
        check("linear \(n)x\(inF)→\(outF)", inputs: inputs) { t in Tensor.linear(t[0], weight: t[1], bias: t[2]) }
    }

    /// The emulated precision leaves fp32 alone: the same op outside `withPrecision` is bit-identical
    /// to a run that never saw bf16, and the setting does not leak out of the task.
    @Test func fp32IsUntouched() {
        let c = Sweeps.conv2dSpecial[2]
        let inputs = c.conv2dInputs(seed: 3)
        let g = TestData.normal(Engine.withBackend(.reference) { Autograd.noGrad { c.conv2d(inputs) } }.shape, seed: 4)
        let before = onBackend(.onednn) { runOp(inputs, seed: g, c.conv2d) }
        _ = onBackend(.onednn) { Engine.withPrecision(.bf16Emulated) { runOp(inputs, seed: g, c.conv2d) } }
        let after = onBackend(.onednn) { runOp(inputs, seed: g, c.conv2d) }
        #expect(before.y == after.y && before.grads == after.grads)
        #expect(!allBF16(after.y))
    }
}
