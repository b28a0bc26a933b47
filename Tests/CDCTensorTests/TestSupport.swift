import Foundation
import Testing
@testable import CDCTensor

// MARK: - Where the engine runs

/// One dedicated thread on which the tests run all their oneDNN work, one job at a time.
///
/// The engine caches oneDNN primitives process-wide, but Debian's oneDNN 2.6 gives each primitive
/// the *executing thread's* global scratchpad, sized by the primitives *created on that thread*:
/// running a cached primitive on another thread reads a missing or too small scratchpad (null
/// dereference or silent corruption; see `EngineThreadingTests`). Swift Testing runs tests in
/// parallel on a thread pool, so without this the oneDNN checks fail at random. The threading
/// bug itself is covered by `EngineThreadingTests`, which deliberately do not use this thread.
final class EngineThread: @unchecked Sendable {
    static let shared = EngineThread()
    private let condition = NSCondition()
    private let callers = NSLock()
    private var job: (() -> Void)?
    private var finished = false

    private init() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "cdc-tests-engine"
        thread.stackSize = 16 << 20
        thread.start()
    }

    private func loop() {
        while true {
            condition.lock()
            while job == nil { condition.wait() }
            var work = job
            job = nil
            condition.unlock()
            work!()
            work = nil      // release the caller's closure before the caller returns
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Runs `body` on the engine thread and returns its result (callers are served one at a time).
    func run<R>(_ body: () -> R) -> R {
        callers.lock(); defer { callers.unlock() }
        var result: R?
        withoutActuallyEscaping(body) { body in
            condition.lock()
            finished = false
            job = { result = body() }
            condition.broadcast()
            while !finished { condition.wait() }
            condition.unlock()
        }
        return result!
    }
}

/// Runs `body` with `backend` in effect: oneDNN work on the engine thread, reference work in place.
/// Keep `#expect` out of `body` (issues are attributed through task-locals the engine thread lacks):
/// return values and check them afterwards.
func onBackend<R>(_ backend: KernelBackend, _ body: () -> R) -> R {
    switch backend {
    case .onednn: return EngineThread.shared.run { Engine.withBackend(.onednn, body) }
    case .reference: return Engine.withBackend(.reference, body)
    }
}

/// Both kernel backends, for `@Test(arguments:)`.
let allBackends: [KernelBackend] = [.onednn, .reference]

extension KernelBackend: CustomTestStringConvertible {
    public var testDescription: String { rawValue }
}

// MARK: - Test data

/// Helpers that make small, deterministic test tensors.
enum TestData {
    /// Normal values (row-major, plain).
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

    /// Distinct values `spacing` apart in a random order, centred on zero: no ties for max
    /// pooling, and a finite-difference step below `spacing / 2` never changes a window's maximum.
    static func distinct(_ shape: [Int], seed: UInt64, spacing: Float = 0.1) -> Tensor {
        let n = shape.reduce(1, *)
        var g = SeededGenerator(seed: seed)
        let order = Array(0..<n).shuffled(using: &g)
        return Tensor(order.map { (Float($0) - Float(n) / 2) * spacing }, shape: shape)
    }

    /// A fresh plain leaf with the same values (no history), with `requiresGrad` set.
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

/// max |a − b| / max |b|: the scale-free error of the backend comparisons (NaN counts as ∞).
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    if a.contains(where: { $0.isNaN }) || b.contains(where: { $0.isNaN }) { return .infinity }
    return maxAbsDiff(a, b) / max(maxAbs(b), 1e-6)
}

/// Expects `actual` to agree with `expected` to `tolerance` relative to the largest expected value.
func expectClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-4, _ what: @autoclosure () -> String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let err = relativeError(actual, expected)
    #expect(err <= tolerance, "\(what()): relative error \(err) > \(tolerance)", sourceLocation: sourceLocation)
}

/// Expects element-by-element agreement to an absolute tolerance.
func expectValues(_ actual: [Float], _ expected: [Float], atol: Float = 1e-5, _ what: @autoclosure () -> String = "",
                  sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    let err = maxAbsDiff(actual, expected)
    #expect(err <= atol, "\(what()): max abs error \(err); got \(actual.prefix(12)) expected \(expected.prefix(12))",
            sourceLocation: sourceLocation)
}

/// Same, for a tensor (also checks the shape when given).
func expectValues(_ actual: Tensor, _ expected: [Float], shape: [Int]? = nil, atol: Float = 1e-5,
                  _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    if let shape { #expect(actual.shape == shape, "\(what()): shape", sourceLocation: sourceLocation) }
    expectValues(actual.values, expected, atol: atol, what(), sourceLocation: sourceLocation)
}

// MARK: - Finite-difference gradient checker

/// Compares autograd's gradients of `f` with central differences.
///
/// The scalar that is differentiated is `Σ f(x) ⊙ W` with fixed random weights `W`, so that every
/// output element matters with a different weight (a wrong index, sign or scale anywhere in the
/// backward changes the result). The numerical side evaluates `f` under `noGrad`, accumulates the
/// weighted sum in `Double`, and divides by the step actually taken in float32.
///
/// The check is per element: `|analytic − numeric| ≤ atol · max|numeric| + rtol · |numeric|`, so
/// a factor of 2, a flipped sign or a transposed index fails while float32 round-off passes.
struct GradientChecker {
    var backend: KernelBackend
    var eps: Float = 1e-2
    var rtol: Float = 1e-2
    var atol: Float = 5e-3
    /// Which inputs to check (default all); the others are constants.
    var wrt: [Int]? = nil
    /// Require each checked numerical gradient to be nonzero (guards against vacuous checks).
    var expectNonzero = true
    /// Compare only this many elements of each input, spread evenly (first and last included),
    /// for inputs too large to perturb one by one; nil compares every element.
    var sample: Int? = nil
    var weightSeed: UInt64 = 0xC0FFEE

    /// Result of one input's comparison.
    struct Report {
        var input: Int
        var shape: [Int]
        var analytic: [Float]?
        var gradShape: [Int]?
        var numeric: [Float]
        /// The elements compared (all unless `sample` is set); `numeric` is 0 elsewhere.
        var checked: [Int]
        var worst: Float = 0       // largest |a − n| / tolerance (≤ 1 passes)
        var worstIndex = 0
    }

    /// Runs `f` and the finite differences on `backend` (oneDNN on the engine thread), then
    /// records issues at the caller's location.
    @discardableResult
    func check(_ label: String, _ inputs: [Tensor], sourceLocation: SourceLocation = #_sourceLocation,
               _ f: ([Tensor]) -> Tensor) -> [Report] {
        let name = "\(label) [\(backend)]"
        let computed: (outputRequiresGrad: Bool, reports: [Report], ops: Set<Op>) = onBackend(backend) { compute(inputs, f) }
        CheckedOps.current?.insert(computed.ops)
        guard computed.outputRequiresGrad else {
            Issue.record("\(name): output does not require grad", sourceLocation: sourceLocation)
            return []
        }
        var reports: [Report] = []
        for var r in computed.reports {
            guard let analytic = r.analytic else {
                Issue.record("\(name): input \(r.input) got no gradient", sourceLocation: sourceLocation)
                continue
            }
            guard r.gradShape == r.shape else {
                Issue.record("\(name): input \(r.input) has gradient of shape \(r.gradShape ?? []), expected \(r.shape)",
                             sourceLocation: sourceLocation)
                continue
            }
            let numeric = r.numeric
            let scale = maxAbs(numeric)
            for i in r.checked {
                let tol = atol * max(scale, 1e-3) + rtol * abs(numeric[i])
                let q = abs(analytic[i] - numeric[i]) / tol
                if !(q <= r.worst) { r.worst = q.isNaN ? .infinity : q; r.worstIndex = i }
            }
            if expectNonzero {
                #expect(scale > 1e-4, "\(name): numerical gradient of input \(r.input) is zero; the check would be vacuous",
                        sourceLocation: sourceLocation)
            }
            let i = r.worstIndex
            #expect(r.worst <= 1, """
                \(name): gradient of input \(r.input) (shape \(r.shape)) mismatch at element \(i): \
                analytic \(analytic[i]) vs numeric \(numeric[i]) (largest \(scale)); \
                analytic \(analytic.prefix(8)), numeric \(numeric.prefix(8))
                """, sourceLocation: sourceLocation)
            reports.append(r)
        }
        return reports
    }

    private func compute(_ inputs: [Tensor], _ f: ([Tensor]) -> Tensor) -> (Bool, [Report], Set<Op>) {
        let checked = wrt ?? Array(inputs.indices)
        // Leaves of our own, so the caller's tensors are untouched.
        let xs = inputs.enumerated().map { TestData.leaf($0.element, requiresGrad: checked.contains($0.offset)) }

        // Analytic: (f(x) * W).sum().backward()
        let y = f(xs)
        let weights = TestData.normal(y.shape, seed: weightSeed)
        let wv = weights.values.map(Double.init)
        guard y.requiresGrad else { return (false, [], []) }
        let ops = recordedOps(y)
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
            var numeric = [Float](repeating: 0, count: x.count)
            let p = x.storage.pointer
            let indices = sample.map { n in
                n >= x.count || n < 2 ? Array(0..<x.count) : Array(Set((0..<n).map { $0 * (x.count - 1) / (n - 1) })).sorted()
            } ?? Array(0..<x.count)
            for i in indices {
                let orig = p[i]
                let up = orig + eps, down = orig - eps
                p[i] = up; let lp = loss()
                p[i] = down; let lm = loss()
                p[i] = orig
                numeric[i] = Float((lp - lm) / (Double(up) - Double(down)))
            }
            reports.append(Report(input: k, shape: x.shape, analytic: x.grad?.values, gradShape: x.grad?.shape,
                                  numeric: numeric, checked: indices))
        }
        return (true, reports, ops)
    }
}

/// Gradient check of `f` at `inputs` on `backend` (see ``GradientChecker``).
@discardableResult
func checkGradients(_ label: String, backend: KernelBackend, _ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 1e-2,
                    atol: Float = 5e-3, wrt: [Int]? = nil, expectNonzero: Bool = true, sample: Int? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation,
                    _ f: ([Tensor]) -> Tensor) -> [GradientChecker.Report] {
    GradientChecker(backend: backend, eps: eps, rtol: rtol, atol: atol, wrt: wrt, expectNonzero: expectNonzero,
                    sample: sample)
        .check(label, inputs, sourceLocation: sourceLocation, f)
}

/// The ops recorded in the graph that produced `y` (walked before `backward` releases it).
func recordedOps(_ y: Tensor) -> Set<Op> {
    var ops = Set<Op>(), seen = Set<ObjectIdentifier>(), stack = [y]
    while let t = stack.popLast() {
        guard seen.insert(ObjectIdentifier(t)).inserted, let fn = t.gradFn else { continue }
        ops.insert(fn.op)
        stack += fn.inputs
    }
    return ops
}

/// The ops of every graph the gradient checker checked within ``collect(_:)`` (task-local, so
/// tests running in parallel do not see each other's).
final class CheckedOps: @unchecked Sendable {
    @TaskLocal static var current: CheckedOps?
    private let lock = NSLock()
    private var ops = Set<Op>()

    func insert(_ more: Set<Op>) { lock.withLock { ops.formUnion(more) } }

    /// Runs `body` and returns the ops recorded in the graphs it gradient-checked.
    static func collect(_ body: () throws -> Void) rethrows -> Set<Op> {
        let c = CheckedOps()
        try $current.withValue(c) { try body() }
        return c.lock.withLock { c.ops }
    }
}

// MARK: - Backend comparison

/// Forward values and the gradients of every leaf, from one run of `f` on one backend.
struct RunResult {
    var output: [Float]
    var outputShape: [Int]
    var grads: [[Float]?]
    /// Anything else the function chose to report (e.g. running statistics after the step).
    var extra: [[Float]] = []
}

/// Runs `f` on `backend` with fresh leaf copies of `inputs` (those in `wrt` require grad),
/// back-propagates `Σ f(x) ⊙ W` with fixed random `W`, and returns output and gradients.
func runWithGradients(_ backend: KernelBackend, _ inputs: [Tensor], wrt: [Int]? = nil, weightSeed: UInt64 = 77,
                      _ f: ([Tensor]) -> Tensor) -> RunResult {
    onBackend(backend) {
        let checked = wrt ?? Array(inputs.indices)
        let xs = inputs.enumerated().map { TestData.leaf($0.element, requiresGrad: checked.contains($0.offset)) }
        let y = f(xs)
        let w = TestData.normal(y.shape, seed: weightSeed)
        (y * w).sum().backward()
        return RunResult(output: y.values, outputShape: y.shape, grads: xs.map { $0.grad?.values })
    }
}

/// Expects two runs (oneDNN and reference) to agree: output shape and values, and every gradient.
func expectRunsAgree(_ a: RunResult, _ r: RunResult, _ label: String, tolerance: Float = 1e-4,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.outputShape == r.outputShape, "\(label): output shape \(a.outputShape) vs \(r.outputShape)",
            sourceLocation: sourceLocation)
    expectClose(a.output, r.output, tolerance: tolerance, "\(label): forward", sourceLocation: sourceLocation)
    for i in a.grads.indices {
        switch (a.grads[i], r.grads[i]) {
        case let (ga?, gr?):
            expectClose(ga, gr, tolerance: tolerance, "\(label): gradient of input \(i)", sourceLocation: sourceLocation)
        case (nil, nil):
            break
        default:
            Issue.record("\(label): gradient of input \(i) present on one backend only", sourceLocation: sourceLocation)
        }
    }
    for i in a.extra.indices where i < r.extra.count {
        expectClose(a.extra[i], r.extra[i], tolerance: tolerance, "\(label): extra result \(i)", sourceLocation: sourceLocation)
    }
}

/// Runs `f` on both backends and expects the forward output and every gradient to agree to
/// `tolerance` (max abs error / max abs reference value).
func expectBackendsAgree(_ label: String, _ inputs: [Tensor], tolerance: Float = 1e-4, wrt: [Int]? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor) {
    let a = runWithGradients(.onednn, inputs, wrt: wrt, f)
    let r = runWithGradients(.reference, inputs, wrt: wrt, f)
    expectRunsAgree(a, r, label, tolerance: tolerance, sourceLocation: sourceLocation)
}
