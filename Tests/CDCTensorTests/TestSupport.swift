import Foundation
import Testing
@testable import CDCTensor

// MARK: - Test data

/// Helpers that make small, deterministic test tensors.
enum TestData {
    /// Standard normal values (row-major, plain), optionally scaled and shifted.
    static func normal(_ shape: [Int], seed: UInt64, std: Float = 1, mean: Float = 0) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor.normal(shape, mean: mean, std: std, generator: &g)
    }

    /// Uniform values in [low, high).
    static func uniform(_ shape: [Int], seed: UInt64, low: Float, high: Float) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor.uniform(shape, low: low, high: high, generator: &g)
    }

    /// Normal values moved at least `margin` away from each of `points` (for ops with kinks:
    /// ReLU at 0, clamp at its bounds), so that a finite difference never straddles a kink.
    static func awayFrom(_ points: [Float], _ shape: [Int], seed: UInt64, margin: Float = 0.1, std: Float = 1) -> Tensor {
        let t = normal(shape, seed: seed, std: std)
        let p = t.storage.pointer
        for i in 0..<t.count {
            for c in points where abs(p[i] - c) < margin {
                p[i] = p[i] >= c ? c + margin + (p[i] - c) : c - margin - (c - p[i])
            }
        }
        return t
    }

    /// Distinct values spaced `spacing` apart in a random order (no ties for max pooling:
    /// every pair differs by at least `spacing`), centred on zero.
    static func distinct(_ shape: [Int], seed: UInt64, spacing: Float = 0.1) -> Tensor {
        let n = shape.reduce(1, *)
        var g = SeededGenerator(seed: seed)
        let order = Array(0..<n).shuffled(using: &g)
        return Tensor(order.map { (Float($0) - Float(n) / 2) * spacing }, shape: shape)
    }

    /// A fresh leaf copy (plain, no history) with `requiresGrad` set.
    static func leaf(_ t: Tensor, requiresGrad: Bool = true) -> Tensor {
        Tensor(t.values, shape: t.shape, requiresGrad: requiresGrad)
    }
}

// MARK: - Comparisons

/// max |a − b|.
func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "maxAbsDiff: \(a.count) vs \(b.count) values")
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// max |a|.
func maxAbs(_ a: [Float]) -> Float { a.reduce(0) { max($0, abs($1)) } }

/// max |a − b| / max |b| (the scale-free error the kernel sweeps use); a tiny floor keeps
/// all-zero references meaningful.
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    maxAbsDiff(a, b) / max(maxAbs(b), 1e-6)
}

/// Expects two value arrays to agree to `tolerance` relative to the largest reference value.
func expectClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-4, _ what: @autoclosure () -> String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let err = relativeError(actual, expected)
    #expect(err <= tolerance, "\(what()): relative error \(err) > \(tolerance)", sourceLocation: sourceLocation)
}

/// Expects exact-ish agreement element by element (absolute tolerance).
func expectValues(_ actual: Tensor, _ expected: [Float], shape: [Int]? = nil, atol: Float = 1e-5,
                  _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    if let shape { #expect(actual.shape == shape, "\(what()): shape", sourceLocation: sourceLocation) }
    let v = actual.values
    guard v.count == expected.count else {
        Issue.record("\(what()): \(v.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let err = maxAbsDiff(v, expected)
    #expect(err <= atol, "\(what()): max abs error \(err); got \(v.prefix(12)) expected \(expected.prefix(12))",
            sourceLocation: sourceLocation)
}

// MARK: - Finite-difference gradient checker

/// Compares autograd's gradients of `f` with central differences.
///
/// The scalar that is differentiated is `Σ f(x) ⊙ W` with fixed random weights `W`, so that every
/// output element matters with a different weight (a wrong index, sign or scale in any part of
/// the backward changes the result). The numerical side evaluates `f` under `noGrad`, accumulates
/// the weighted sum in `Double`, and divides by the step actually taken in float32.
///
/// The check is per element: `|analytic − numeric| ≤ atol · max|numeric| + rtol · |numeric|`, so
/// a factor of 2, a flipped sign or a transposed index fails, while float32 round-off passes.
struct GradientChecker {
    var backend: KernelBackend
    var eps: Float = 1e-2
    var rtol: Float = 1e-2
    var atol: Float = 5e-3
    /// Which inputs to check (default all).
    var wrt: [Int]? = nil
    /// Require each checked numerical gradient to be nonzero (guards against vacuous checks).
    var expectNonzero = true
    var weightSeed: UInt64 = 0xC0FFEE

    init(backend: KernelBackend, eps: Float = 1e-2, rtol: Float = 1e-2, atol: Float = 5e-3, wrt: [Int]? = nil,
         expectNonzero: Bool = true) {
        self.backend = backend; self.eps = eps; self.rtol = rtol; self.atol = atol; self.wrt = wrt
        self.expectNonzero = expectNonzero
    }

    /// Result of one input's comparison.
    struct Report {
        var input: Int
        var analytic: [Float]
        var numeric: [Float]
        var worst: Float   // largest |a − n| / tolerance (≤ 1 passes)
        var worstIndex: Int
    }

    /// Runs the check; records issues at the caller's location and returns per-input reports.
    @discardableResult
    func check(_ label: String, _ inputs: [Tensor], sourceLocation: SourceLocation = #_sourceLocation,
               _ f: ([Tensor]) -> Tensor) -> [Report] {
        Engine.withBackend(backend) { run(label, inputs, sourceLocation, f) }
    }

    private func run(_ label: String, _ inputs: [Tensor], _ loc: SourceLocation, _ f: ([Tensor]) -> Tensor) -> [Report] {
        let name = "\(label) [\(backend)]"
        let checked = wrt ?? Array(inputs.indices)
        // Leaves of our own, so the caller's tensors are untouched.
        let xs = inputs.enumerated().map { TestData.leaf($0.element, requiresGrad: checked.contains($0.offset)) }

        // Analytic: (f(x) * W).sum().backward()
        let y = f(xs)
        let weights = TestData.normal(y.shape, seed: weightSeed)
        let wv = weights.values.map(Double.init)
        guard y.requiresGrad else {
            Issue.record("\(name): output does not require grad", sourceLocation: loc)
            return []
        }
        (y * weights).sum().backward()

        // Numerical: the same scalar from values, in Double.
        func loss() -> Double {
            let v = Autograd.noGrad { f(xs) }.values
            var acc = 0.0
            for i in v.indices { acc += Double(v[i]) * wv[i] }
            return acc
        }

        var reports: [Report] = []
        for k in checked {
            let x = xs[k]
            guard let grad = x.grad else {
                Issue.record("\(name): input \(k) got no gradient", sourceLocation: loc)
                continue
            }
            if grad.shape != x.shape {
                Issue.record("\(name): input \(k) gradient shape \(grad.shape) != \(x.shape)", sourceLocation: loc)
                continue
            }
            let analytic = grad.values
            var numeric = [Float](repeating: 0, count: x.count)
            let p = x.storage.pointer
            for i in 0..<x.count {
                let orig = p[i]
                let up = orig + eps, down = orig - eps
                p[i] = up; let lp = loss()
                p[i] = down; let lm = loss()
                p[i] = orig
                numeric[i] = Float((lp - lm) / (Double(up) - Double(down)))
            }
            let scale = maxAbs(numeric)
            var worst: Float = 0, worstIndex = 0
            for i in 0..<x.count {
                let tol = atol * max(scale, 1e-3) + rtol * abs(numeric[i])
                let r = abs(analytic[i] - numeric[i]) / tol
                if r > worst { worst = r; worstIndex = i }
            }
            if expectNonzero {
                #expect(scale > 1e-4, "\(name): numerical gradient of input \(k) is zero; the check would be vacuous",
                        sourceLocation: loc)
            }
            #expect(worst <= 1, """
                \(name): gradient of input \(k) (shape \(x.shape)) mismatch at element \(worstIndex): \
                analytic \(analytic[worstIndex]) vs numeric \(numeric[worstIndex]) (scale \(scale)); \
                analytic prefix \(analytic.prefix(8)), numeric prefix \(numeric.prefix(8))
                """, sourceLocation: loc)
            reports.append(Report(input: k, analytic: analytic, numeric: numeric, worst: worst, worstIndex: worstIndex))
        }
        return reports
    }
}

/// Shorthand: gradient check of `f` at `inputs` on `backend`.
@discardableResult
func checkGradients(_ label: String, backend: KernelBackend, _ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 1e-2,
                    atol: Float = 5e-3, wrt: [Int]? = nil, expectNonzero: Bool = true,
                    sourceLocation: SourceLocation = #_sourceLocation,
                    _ f: ([Tensor]) -> Tensor) -> [GradientChecker.Report] {
    GradientChecker(backend: backend, eps: eps, rtol: rtol, atol: atol, wrt: wrt, expectNonzero: expectNonzero)
        .check(label, inputs, sourceLocation: sourceLocation, f)
}

/// Both kernel backends, for `@Test(arguments:)`.
let allBackends: [KernelBackend] = [.onednn, .reference]

extension KernelBackend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}

// MARK: - Backend comparison

/// Forward values and the gradients of every leaf, from one run of `f` on one backend.
struct RunResult {
    var output: [Float]
    var outputShape: [Int]
    var grads: [[Float]?]
}

/// Runs `f` on `backend` with fresh leaf copies of `inputs` (those in `wrt` require grad),
/// back-propagates `Σ f(x) ⊙ W` with fixed random `W`, and returns output and gradients.
func runWithGradients(_ backend: KernelBackend, _ inputs: [Tensor], wrt: [Int]? = nil, weightSeed: UInt64 = 77,
                      _ f: ([Tensor]) -> Tensor) -> RunResult {
    Engine.withBackend(backend) {
        let checked = wrt ?? Array(inputs.indices)
        let xs = inputs.enumerated().map { TestData.leaf($0.element, requiresGrad: checked.contains($0.offset)) }
        let y = f(xs)
        let w = TestData.normal(y.shape, seed: weightSeed)
        (y * w).sum().backward()
        return RunResult(output: y.values, outputShape: y.shape, grads: xs.map { $0.grad?.values })
    }
}

/// Runs `f` on both backends and expects the forward output and every gradient to agree to
/// `tolerance` (max abs error / max abs reference value).
func expectBackendsAgree(_ label: String, _ inputs: [Tensor], tolerance: Float = 1e-4, wrt: [Int]? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor) {
    let a = runWithGradients(.onednn, inputs, wrt: wrt, f)
    let r = runWithGradients(.reference, inputs, wrt: wrt, f)
    #expect(a.outputShape == r.outputShape, "\(label): output shape \(a.outputShape) vs \(r.outputShape)",
            sourceLocation: sourceLocation)
    expectClose(a.output, r.output, tolerance: tolerance, "\(label): forward", sourceLocation: sourceLocation)
    for i in inputs.indices {
        switch (a.grads[i], r.grads[i]) {
        case let (ga?, gr?):
            expectClose(ga, gr, tolerance: tolerance, "\(label): gradient of input \(i)", sourceLocation: sourceLocation)
        case (nil, nil):
            break
        default:
            Issue.record("\(label): gradient of input \(i) present on one backend only", sourceLocation: sourceLocation)
        }
    }
}
