import CDCData

/// What long work (training, compression, an upload) reports as it goes; a command-line tool
/// draws it as progress bars and log lines, a service may forward it.
public enum ProgressEvent: Sendable, Equatable {
    /// A line for the log.
    case message(String)
    /// Step `done` of `total` of the task named `task` (a new name starts a new task), with a
    /// short status (losses, bytes sent).
    case step(task: String, done: Int, total: Int, status: String)
}

/// Receives ``ProgressEvent``s; called on the working thread, so it should return quickly.
public typealias ProgressHandler = @Sendable (ProgressEvent) -> Void

extension EdgeSession {
    /// One epoch of stage 1 reported as steps of the task `label`.
    @discardableResult
    public func trainEpoch(_ data: LabelledDataset, task label: String, progress: @escaping ProgressHandler) -> EdgeEpochStats {
        let total = data.count / config.batchSize
        return trainEpoch(data) { done, _, status in progress(.step(task: label, done: done, total: total, status: status)) }
    }
}
