import CDCData

extension CoInferenceExperiment {
    /// BottleNet++ rows (wired to the BottleNet++ module once it lands).
    func bottlenetRows(_ spec: BottleNetSpec, train: LabelledDataset, calibration: LabelledDataset, test: LabelledDataset) throws {
        log("  [bottlenet++] \(spec.split) C'=\(spec.codeChannels): not wired yet")
    }
}
