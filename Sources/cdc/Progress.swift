import CDCPipeline
import Foundation

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// A one-line progress bar on standard error (redrawn at most 5 times a second).
final class ProgressBar {
    let total: Int, label: String
    let start = Date()
    private var lastDraw = Date.distantPast
    init(total: Int, label: String) { self.total = total; self.label = label }

    func update(_ done: Int, _ status: String) {
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) > 0.2 else { return }
        lastDraw = now
        let width = 24, filled = total == 0 ? width : width * min(done, total) / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(max(total - done, 0)) : 0
        FileHandle.standardError.write(Data(String(format: "\r%@ %@ %d/%d  %@  %.0fs (eta %.0fs)  ",
                                                   label, bar, done, total, status, elapsed, eta).utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}

/// Draws the library's ``ProgressEvent``s: a bar per task, log lines between them.
final class ProgressPrinter: @unchecked Sendable {
    private let lock = NSLock()
    private var bar: ProgressBar?

    func handle(_ event: ProgressEvent) {
        lock.lock(); defer { lock.unlock() }
        switch event {
        case .message(let s):
            if bar != nil { bar?.finish(); bar = nil }
            log(s)
        case .step(let task, let done, let total, let status):
            if bar?.label != task { bar?.finish(); bar = ProgressBar(total: total, label: task) }
            bar?.update(done, status)
            if done >= total { bar?.finish(); bar = nil }
        }
    }

    /// The handler to give the library.
    var handler: ProgressHandler { { [self] in self.handle($0) } }
}
