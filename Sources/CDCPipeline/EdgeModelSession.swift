import CDCCodec
import CDCData
import CDCModels
import Foundation

/// What the edge's upload loop needs of a trained model, whichever system it is: CDC's
/// autoencoder (``EdgeSession``, uploading codes and a decoder) or the VAE codec
/// (``VAEClsSession``, uploading codes and a latent file). Both travel in the same container,
/// service and store; the mask m is the rate knob of either.
public protocol EdgeModelSession: AnyObject {
    /// The system's name (`cdc`, `vae-cls`).
    var systemName: String { get }
    /// The mask m of the codes this session uploads.
    var uploadMask: Int { get }
    /// Epochs the session trains for, and epochs done.
    var plannedEpochs: Int { get }
    var epochsDone: Int { get }
    /// The sample geometry in words.
    var geometry: String { get }
    /// Whether `data` has the geometry the session was built for.
    func accepts(_ data: LabelledDataset) -> Bool
    /// One epoch of training, reported as steps of the task `task`.
    func trainOneEpoch(_ data: LabelledDataset, task: String, progress: @escaping ProgressHandler)
    /// Saves the session into `dir` (atomically, resumable).
    func save(to dir: URL) throws
    /// The one-off file of an upload: CDC's decoder, vae-cls's latent file.
    func uploadFile() throws -> [UInt8]
    /// `data` encoded at ``uploadMask`` into a container coded with `coding`, naming the upload file by its hash.
    func compress(_ data: LabelledDataset, coding: Coding, decoderHash: UInt64) throws -> LatentContainer
    /// A new session at mask `m` starting from this one's weights, to be fine-tuned for `epochs`
    /// at a tenth of the learning rate.
    func retuned(mask m: Int, epochs: Int) throws -> any EdgeModelSession
}

extension EdgeSession: EdgeModelSession {
    public var systemName: String { "cdc" }
    public var uploadMask: Int { config.mask }
    public var plannedEpochs: Int { config.epochs }
    public func trainOneEpoch(_ data: LabelledDataset, task: String, progress: @escaping ProgressHandler) {
        trainEpoch(data, task: task, progress: progress)
    }
    public func uploadFile() throws -> [UInt8] { try EdgeCodec.decoderFile(self) }
    public func retuned(mask m: Int, epochs: Int) throws -> any EdgeModelSession {
        try Retune.session(from: self, mask: m, learningRate: config.learningRate / 10, epochs: epochs)
    }
}

extension VAEClsSession: EdgeModelSession {
    public var systemName: String { VAEClassifier.architecture }
    public var uploadMask: Int { config.mask }
    public var plannedEpochs: Int { config.epochs }
    public func trainOneEpoch(_ data: LabelledDataset, task: String, progress: @escaping ProgressHandler) {
        trainEpoch(data, task: task, progress: progress)
    }
    public func uploadFile() throws -> [UInt8] { try latentFile() }
    public func retuned(mask m: Int, epochs: Int) throws -> any EdgeModelSession {
        try retuned(mask: m, learningRate: config.learningRate / 10, epochs: epochs)
    }
}

/// Saved edge sessions of either system.
public enum EdgeModelSessions {
    /// Whether `dir` holds a saved session of either system.
    public static func exists(in dir: URL) -> Bool {
        VAEClsSession.exists(in: dir) || FileManager.default.fileExists(atPath: dir.appendingPathComponent("session.json").path)
    }

    /// The session saved in `dir`, whichever system it is.
    public static func resume(from dir: URL) throws -> any EdgeModelSession {
        VAEClsSession.exists(in: dir) ? try VAEClsSession.resume(from: dir) : try EdgeSession.resume(from: dir)
    }
}
