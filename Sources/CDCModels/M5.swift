import CDCNN
import CDCTensor

/// The audio cloud classifiers (raw waveforms, NCL).
public enum AudioClassifier {
    /// `m5` (Dai et al., ICASSP 2017) at 8 kHz: conv1d(80, 4, 38) 1→128, then conv1d(3, 1, 1)
    /// 128→128→256→512, each without bias and followed by BatchNorm1d, ReLU and max-pool 4;
    /// global average pool, flatten, linear 512→`classes`. State names are PyTorch's
    /// `nn.Sequential` ones: convolutions `0`, `4`, `8`, `12`; batch norms `1`, `5`, `9`, `13`;
    /// the linear layer `18`. At L = 8000 the stages are 2000 → 500 → 125 → 31 → 7 long.
    public static func m5(classes: Int = 10) -> Sequential {
        func stage(_ cin: Int, _ cout: Int, kernel: Int, stride: Int, padding: Int) -> [Module] {
            [Conv1d(cin, cout, kernelSize: kernel, stride: stride, padding: padding, bias: false),
             BatchNorm1d(cout), ReLU(), MaxPool1d(4)]
        }
        return Sequential(stage(1, 128, kernel: 80, stride: 4, padding: 38)
                          + stage(128, 128, kernel: 3, stride: 1, padding: 1)
                          + stage(128, 256, kernel: 3, stride: 1, padding: 1)
                          + stage(256, 512, kernel: 3, stride: 1, padding: 1)
                          + [GlobalAvgPool(), Flatten(), Linear(512, classes)])
    }
}
