/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64) so that a run
/// can be repeated exactly. Not thread-safe: give each thread of work its own generator.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Creates a generator whose whole sequence is determined by `seed`.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// The generator's whole state (four words), to save and restore a sequence mid-way.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// A generator that continues from a saved ``state``; nil unless it has four words, not all zero.
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
    }

    /// Next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inlinable public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Standard normal (Box–Muller).
    public mutating func nextNormal() -> Float {
        var u1 = nextUniform()
        if u1 < 1e-12 { u1 = 1e-12 }
        let u2 = nextUniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Float.pi * u2)
    }

    /// Fills `buffer` with uniform values in [low, high).
    public mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>, low: Float, high: Float) {
        let span = high - low
        for i in buffer.indices { buffer[i] = low + span * nextUniform() }
    }

    /// Fills `buffer` with normal values of the given mean and standard deviation.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float, std: Float) {
        for i in buffer.indices { buffer[i] = mean + std * nextNormal() }
    }
}

import Foundation

/// The seeded generator behind parameter initialisation, dropout and the quantizer's noise
/// when no generator is passed (like `torch.manual_seed`). Process-wide by default;
/// `withSeed(_:_:)` gives the current task its own sequence, so that concurrent work (tests
/// run in parallel, two trainings in one process) stays repeatable.
public enum GlobalRandom {
    final class State: @unchecked Sendable {
        let lock = NSLock()
        var generator: SeededGenerator
        init(seed: UInt64) { generator = SeededGenerator(seed: seed) }
    }
    private static let shared = State(seed: 0)
    @TaskLocal static var local: State?

    /// Restarts the sequence (the task's own one inside `withSeed`, else the process-wide one).
    public static func seed(_ seed: UInt64) {
        let s = local ?? shared
        s.lock.lock(); s.generator = SeededGenerator(seed: seed); s.lock.unlock()
    }

    /// Runs `body` with a sequence of its own, started from `seed`, for everything it draws
    /// through `GlobalRandom` (in this task and the tasks it creates).
    public static func withSeed<R>(_ seed: UInt64, _ body: () throws -> R) rethrows -> R {
        try $local.withValue(State(seed: seed)) { try body() }
    }

    /// Runs `body` with exclusive access to the generator in effect.
    public static func with<R>(_ body: (inout SeededGenerator) throws -> R) rethrows -> R {
        let s = local ?? shared
        s.lock.lock(); defer { s.lock.unlock() }
        return try body(&s.generator)
    }
}
