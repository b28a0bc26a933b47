import CDCWire
import Foundation
import Synchronization

/// Caps the edge's upload rate (like rsync's `--bwlimit` or curl's `--limit-rate`): for an
/// uplink shared with other traffic, or to run the bandwidth-driven mask loop against a slow link
/// on one machine. Every request body waits for the time its bytes take at the cap, in a single
/// schedule shared by all requests in flight, before it is sent; so the bytes per second of any
/// stretch of an upload stay at or below the cap (up to one body's worth of burst at the end).
public final class UplinkRateLimit: Sendable {
    /// The cap, in bits per second.
    public let bitsPerSecond: Double
    private let clock = ContinuousClock()
    /// When the link, as scheduled so far, is free again.
    private let freeAt: Mutex<ContinuousClock.Instant?> = Mutex(nil)

    public init(bitsPerSecond: Double) throws {
        guard bitsPerSecond.isFinite, bitsPerSecond > 0 else { throw WireError("the upload cap must be a positive rate, not \(bitsPerSecond)") }
        self.bitsPerSecond = bitsPerSecond
    }

    /// Seconds `bytes` take at the cap.
    public func seconds(for bytes: Int) -> Double { Double(bytes) * 8 / bitsPerSecond }

    /// Books the next `seconds(for: bytes)` of the link and waits until they have passed.
    public func pace(_ bytes: Int) async throws {
        guard bytes > 0 else { return }
        let duration = Duration.seconds(seconds(for: bytes))
        let clock = self.clock
        let end = freeAt.withLock { free -> ContinuousClock.Instant in
            let now = clock.now
            let start = free.map { max($0, now) } ?? now
            free = start + duration
            return start + duration
        }
        try await Task.sleep(until: end, clock: clock)
    }
}
