import CDCData
import CDCNN
import CDCTensor
import Foundation
import Testing
@testable import CDCPipeline

@Suite("Training until the validation accuracy stops improving, and resuming")
struct ResumableTrainingTests {
    /// Patience 2: a drop of the rate after two epochs without a better accuracy, two drops, then
    /// a stop after two more; the best epoch is remembered with its weights.
    @Test func plateauScheduleDecaysTwiceThenStops() {
        let model = Linear(2, 2)
        let p = PlateauSchedule(patience: 2)
        let accs: [Float] = [0.5, 0.6, 0.6, 0.55, /* decay */ 0.7, 0.65, 0.7, /* decay */ 0.69, 0.7, /* stop */]
        var scales: [Float] = []
        for a in accs { p.observe(a, model: model); scales.append(p.scale) }
        #expect(scales.map { ($0 * 100).rounded() / 100 } == [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
        #expect(p.decays == 2 && p.stopped)
        #expect(p.best == 0.7 && p.bestEpoch == 5)
        #expect(p.bestState != nil)
        // Equal is not better: the counter runs on.
        let q = PlateauSchedule(patience: 1)
        q.observe(0.5, model: model); q.observe(0.5, model: model)
        #expect(q.decays == 1)
    }

    func config(epochs: Int, patience: Int? = nil) -> ClassifierConfig {
        var c = ClassifierConfig()
        c.model = "resnext-11"; c.epochs = epochs; c.batchSize = 16; c.seed = 4
        c.plateauPatience = patience
        return c
    }

    /// An interrupted training resumed from its checkpoint ends with exactly the weights of an
    /// uninterrupted one (model, optimizer momentum, step count and augmentation generator all restored).
    @Test func resumedTrainingEqualsUninterrupted() throws {
        let train = toyDataset(count: 48), val = toyDataset(count: 16, seed: 5)
        let whole = try CloudClassifier.train(train, config: config(epochs: 2, patience: 3), validation: val)

        let dir = tempDir().appendingPathComponent("ckpt")
        // The "crash": one epoch, checkpointed, then the process is gone.
        let first = try ClassifierTraining(train, config: config(epochs: 2, patience: 3))
        first.runEpoch()
        first.plateau!.observe(CloudClassifier.accuracy(first.model, on: val), model: first.model)
        _ = first.model.train()
        try first.save(to: dir)
        var resumedAfter: Int? = nil
        let resumed = try CloudClassifier.train(train, config: config(epochs: 2, patience: 3), validation: val,
                                                checkpoint: dir) { epoch, _, batches, status in
            if batches == 0 && status.hasPrefix("resumed") { resumedAfter = epoch }
        }
        #expect(resumedAfter == 1)
        let a = Checkpoint.stateDict(whole), b = Checkpoint.stateDict(resumed)
        #expect(a.keys.sorted() == b.keys.sorted())
        for k in a.keys { #expect(a[k]!.data == b[k]!.data, "\(k) differs after resuming") }
        // One epoch directory is kept, the latest.
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(entries == ["epoch-0002", "latest"])
    }

    /// A checkpoint of another training is refused, not silently resumed; a plateau run without
    /// validation images is refused.
    @Test func mismatchedCheckpointAndMissingValidationAreRefused() throws {
        let train = toyDataset(count: 32)
        let dir = tempDir().appendingPathComponent("ckpt")
        let t = try ClassifierTraining(train, config: config(epochs: 1))
        t.runEpoch()
        try t.save(to: dir)
        #expect(throws: PipelineError.self) { _ = try CloudClassifier.train(train, config: config(epochs: 3), checkpoint: dir) }
        #expect(throws: PipelineError.self) { _ = try CloudClassifier.train(train, config: config(epochs: 2, patience: 1)) }
    }

    func tinyExperiment() -> ExperimentConfig {
        var c = ExperimentConfig()
        c.trainSubset = 48; c.validation = 16; c.testSubset = 16
        c.masks = [2]; c.seeds = [3]; c.alphaSweep = []; c.autoAlpha = false
        c.includeBaselines = false; c.includeAE = false
        c.edge.epochs = 1; c.edge.batchSize = 16
        c.classifier.epochs = 2; c.classifier.batchSize = 16; c.classifier.plateauPatience = 1
        return c
    }

    /// A second run into the same directory takes over the finished rows instead of training them
    /// again, adds the rows of a new seed, and a directory of other settings is refused.
    @Test func experimentTakesOverFinishedRows() throws {
        let dir = tempDir()
        let train = toyDataset(count: 64), test = toyDataset(count: 16, seed: 2)
        let first = RateAccuracyExperiment(config: tinyExperiment(), out: dir) { _ in }
        try first.run(train: train, test: test)
        #expect(first.rows.map(\.method) == ["raw", "cdc", "cdc-coded"])
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("checkpoints/raw-seed-3").path))

        var more = tinyExperiment()
        more.seeds = [3, 4]
        var logged: [String] = []
        let second = RateAccuracyExperiment(config: more, out: dir) { logged.append($0) }
        try second.run(train: train, test: test)
        #expect(logged.contains { $0.contains("taking over 3 rows") })
        #expect(!logged.contains { $0.contains("[raw seed 3] classifier epoch") })
        #expect(logged.contains { $0.contains("[raw seed 4] classifier epoch") })
        #expect(second.rows.map(\.method).sorted() == ["cdc", "cdc", "cdc-coded", "cdc-coded", "raw", "raw"])
        for r in first.rows {
            // (as results.csv wrote them: rounded)
            #expect(second.rows.contains { $0.method == r.method && $0.seed == r.seed && abs($0.accuracy - r.accuracy) < 1e-3
                                           && abs($0.bpp - r.bpp) < 1e-3 })
        }

        var other = tinyExperiment()
        other.masks = [3]
        #expect(throws: PipelineError.self) {
            try RateAccuracyExperiment(config: other, out: dir) { _ in }.run(train: train, test: test)
        }
    }
}
