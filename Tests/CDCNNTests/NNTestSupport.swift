import CDCSafetensors
import CDCTensor
import Foundation
import Testing
@testable import CDCNN

// MARK: - Fixtures

/// The PyTorch-produced fixtures of `Fixtures/` (made by `scripts/make_optimizer_fixtures.py`).
enum NNFixtures {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    /// `optimizers.safetensors`, read once.
    static let optimizers: Result<[String: Tensor], Error> = Result {
        let file = try SafetensorsFile.read(from: directory.appendingPathComponent("optimizers.safetensors"))
        return try file.tensors.mapValues { Tensor(try $0.floats(), shape: $0.shape) }
    }

    /// The fixture tensor `name` (fails the test when it is absent).
    static func tensor(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Tensor {
        let all = try optimizers.get()
        return try #require(all[name], "fixture tensor '\(name)' is missing", sourceLocation: sourceLocation)
    }

    /// The fixture tensor `name`, nil when the fixture deliberately lacks it.
    static func optionalTensor(_ name: String) throws -> Tensor? { try optimizers.get()[name] }
}

// MARK: - Test data

/// Small deterministic tensors.
enum NNData {
    static func normal(_ shape: [Int], seed: UInt64, std: Float = 1, requiresGrad: Bool = false) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor.normal(shape, std: std, generator: &g, requiresGrad: requiresGrad)
    }

    /// A fresh leaf with the same values.
    static func leaf(_ t: Tensor, requiresGrad: Bool = true) -> Tensor {
        Tensor(t.values, shape: t.shape, requiresGrad: requiresGrad)
    }
}

// MARK: - Comparisons

/// Expects `|actual − expected| ≤ rtol·|expected| + atol` element by element (and equal counts).
func expectAllClose(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
                    _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var worst = -1, worstExcess: Float = 0
    for i in actual.indices {
        let tol = rtol * abs(expected[i]) + atol
        let err = abs(actual[i] - expected[i])
        if !(err <= tol) {
            let excess = err.isNaN ? .infinity : err / tol
            if worst < 0 || excess > worstExcess { worst = i; worstExcess = excess }
        }
    }
    if worst >= 0 {
        Issue.record("""
            \(what()): element \(worst) is \(actual[worst]), expected \(expected[worst]) \
            (|diff| \(abs(actual[worst] - expected[worst])) > rtol \(rtol)·|expected| + atol \(atol)); \
            got \(actual.prefix(8)), expected \(expected.prefix(8))
            """, sourceLocation: sourceLocation)
    }
}

/// Same, for tensors (also checks the shape).
func expectAllClose(_ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6,
                    _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, "\(what()): shape \(actual.shape), expected \(expected.shape)",
            sourceLocation: sourceLocation)
    expectAllClose(actual.values, expected.values, rtol: rtol, atol: atol, what(), sourceLocation: sourceLocation)
}

// MARK: - The global generator

/// Runs `body` twice, each time right after `GlobalRandom.seed(seed)`, and returns both results.
///
/// Everything runs inside `GlobalRandom.withSeed`, which gives this task its own sequence
/// (`seed` then restarts that one), so tests running in parallel that create layers cannot
/// draw numbers in between.
func twiceWithSeed<R>(_ seed: UInt64, _ body: () -> R) -> (R, R) {
    GlobalRandom.withSeed(seed &+ 0x5EED) {
        GlobalRandom.seed(seed)
        let a = body()
        GlobalRandom.seed(seed)
        let b = body()
        return (a, b)
    }
}

/// The same with the process-wide sequence (no `withSeed`): other tests in the process may
/// draw from it concurrently (any layer they create does), which would make two otherwise
/// identical runs differ; so a differing pair is retried a few times. A broken seed would
/// never give an identical pair.
func twiceWithProcessWideSeed<R: Equatable>(_ seed: UInt64, attempts: Int = 8, _ body: () -> R) -> (R, R) {
    var last: (R, R)? = nil
    for _ in 0..<attempts {
        GlobalRandom.seed(seed)
        let a = body()
        GlobalRandom.seed(seed)
        let b = body()
        if a == b { return (a, b) }
        last = (a, b)
    }
    return last!
}
