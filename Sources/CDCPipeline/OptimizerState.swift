import CDCNN
import CDCSafetensors
import CDCTensor
import Foundation

/// Optimizer state in safetensors files (for resumable training).
public enum OptimizerState {
    /// Saves the optimizer's state tensors and learning rate to `url` (durably and atomically).
    public static func save(_ optimizer: Optimizer, to url: URL) throws {
        let tensors = optimizer.stateTensors().mapValues { SafetensorsTensor(float32: $0.values, shape: $0.shape) }
        try SafetensorsFile(tensors: tensors, metadata: ["learning_rate": "\(optimizer.learningRate)"]).write(to: url)
    }

    /// Loads state saved by ``save(_:to:)`` into `optimizer`.
    public static func load(into optimizer: Optimizer, from url: URL) throws {
        let file = try SafetensorsFile.read(from: url)
        let state = try file.tensors.mapValues { Tensor(try $0.floats(), shape: $0.shape) }
        try optimizer.loadStateTensors(state)
    }
}
