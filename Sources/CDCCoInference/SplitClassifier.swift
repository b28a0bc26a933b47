import CDCModels
import CDCNN
import CDCTensor

/// A cloud classifier cut into a device part and a server part at a named split point.
///
/// `resnext-11` (any ``ResNeXt``): `S0` after the stem, `S1`–`S3` after each stage, `G` after
/// global average pooling. `m5`: `S1`–`S4` after each stage (convolution, batch norm, ReLU,
/// max-pool), `G` after global average pooling. `input` is the split before the first layer:
/// the device runs nothing and the server runs the whole classifier.
public final class SplitClassifier {
    /// The whole classifier (its parameters are the split parts' parameters).
    public let model: Module
    /// `resnext` or `m5`.
    public let family: String
    /// The split points, in order from the input: `input` first, then the points of the family.
    public let points: [String]
    /// Stage `i` maps the output of point `points[i]` to that of `points[i + 1]`; the last stage
    /// maps the last point to the class scores.
    let stages: [(Tensor) -> Tensor]
    /// The modules of each stage (to freeze or count them).
    public let stageModules: [[Module]]

    /// Splits `model`, a ``ResNeXt`` or the `m5` `Sequential` of ``AudioClassifier/m5(classes:)``.
    public init(_ model: Module) throws {
        self.model = model
        if let r = model as? ResNeXt {
            family = "resnext"
            let blocks = r.blocks.layers
            guard blocks.count % 3 == 0 else { throw SplitError("a ResNeXt with \(blocks.count) blocks is not three equal stages") }
            let n = blocks.count / 3
            let stage: (Int) -> [Module] = { Array(blocks[($0 * n)..<(($0 + 1) * n)]) }
            points = ["input", "S0", "S1", "S2", "S3", "G"]
            stageModules = [[r.stem], stage(0), stage(1), stage(2), [], [r.fc]]
            let run: ([Module]) -> (Tensor) -> Tensor = { ms in { x in ms.reduce(x) { $1($0) } } }
            stages = [run([r.stem]), run(stage(0)), run(stage(1)), run(stage(2)), { $0.globalAvgPool() }, run([r.fc])]
        } else if let s = model as? Sequential, s.layers.count == 19, s.layers[0] is Conv1d {
            family = "m5"
            let l = s.layers
            points = ["input", "S1", "S2", "S3", "S4", "G"]
            let stage: (Int) -> Sequential = { Sequential(Array(l[($0 * 4)..<(($0 + 1) * 4)])) }
            let st = (0..<4).map(stage)
            stageModules = st.map { [$0] } + [[l[16], l[17]], [l[18]]]
            stages = st.map { m in { m($0) } } + [{ l[17](l[16]($0)) }, { l[18]($0) }]
        } else {
            throw SplitError("only resnext and m5 classifiers can be split")
        }
    }

    /// The index of `point` in ``points``.
    public func index(of point: String) throws -> Int {
        guard let i = points.firstIndex(of: point) else {
            throw SplitError("unknown split '\(point)' for \(family) (one of \(points.joined(separator: ", ")))")
        }
        return i
    }

    /// The device's part: the classifier from its input up to `point`.
    public func device(_ x: Tensor, to point: String) throws -> Tensor {
        let k = try index(of: point)
        return stages[0..<k].reduce(x) { $1($0) }
    }

    /// The server's part: the classifier from `point` to the class scores.
    public func server(_ h: Tensor, from point: String) throws -> Tensor {
        let k = try index(of: point)
        return stages[k...].reduce(h) { $1($0) }
    }

    /// The shape of one sample's tensor at `point` (without the batch axis), for an input sample
    /// of shape `sample` (`[C, H, W]` or `[1, L]`): measured by running one zero sample.
    public func featureShape(at point: String, sample: [Int]) throws -> [Int] {
        model.eval()
        let h = try Autograd.noGrad { try device(Tensor.zeros([1] + sample), to: point) }
        return Array(h.shape.dropFirst())
    }

    /// The modules run on the device for `point` (those whose parameters a device holds).
    public func deviceModules(to point: String) throws -> [Module] {
        Array(stageModules[0..<(try index(of: point))].joined())
    }
}

/// A split point or shape that does not exist, or a payload that does not fit one.
public struct SplitError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
