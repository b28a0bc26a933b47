import Foundation
import Testing
@testable import CDCTensor

// Finite-difference checks of every op the engine records, on both kernel backends.
//
// Coverage is structural: `gradientChecks(of:)` switches exhaustively over `Op`, so a new case
// does not compile here until it is given checks, and `everyOpHasAGradientCheck` fails for a
// case whose list is empty. Each check must also record its op in a graph it checks (the
// checker collects the ops of every graph it differentiates), so a check filed under the wrong
// op fails too.

// MARK: - The table

/// One finite-difference check filed under the op it checks; `OpGradientTests` runs it on each
/// backend.
struct OpGradientCheck: Sendable, CustomTestStringConvertible {
    var op: Op
    var label: String
    /// The backends on which a checked graph records `op`: all, except for a fused kernel that
    /// only oneDNN uses on large tensors (elsewhere the same function is composed of other ops).
    var recordedOn: [KernelBackend]
    var run: @Sendable (KernelBackend) -> Void
    var testDescription: String { "\(op): \(label)" }
}

/// The gradient checks of `op`.
func gradientChecks(of op: Op) -> [OpGradientCheck] {
    func check(_ label: String, recordedOn: [KernelBackend] = allBackends,
               _ run: @escaping @Sendable (KernelBackend) -> Void) -> OpGradientCheck {
        OpGradientCheck(op: op, label: label, recordedOn: recordedOn, run: run)
    }
    switch op {
    // MARK: Elementwise arithmetic with broadcasting
    case .add:
        return broadcastCases.map { c in
            check(c.testDescription) { backend in
                let a = TestData.normal(c.a, seed: 1), b = TestData.normal(c.b, seed: 2)
                checkGradients("a + b", backend: backend, [a, b]) { $0[0] + $0[1] }
                checkGradients("b + a", backend: backend, [a, b]) { $0[1] + $0[0] }
            }
        }
    case .sub:
        return broadcastCases.map { c in
            check(c.testDescription) { backend in
                let a = TestData.normal(c.a, seed: 3), b = TestData.normal(c.b, seed: 4)
                checkGradients("a - b", backend: backend, [a, b]) { $0[0] - $0[1] }
                checkGradients("b - a", backend: backend, [a, b]) { $0[1] - $0[0] }
            }
        }
    case .mul:
        return broadcastCases.map { c in
            check(c.testDescription) { backend in
                let a = TestData.normal(c.a, seed: 5), b = TestData.normal(c.b, seed: 6)
                checkGradients("a * b", backend: backend, [a, b]) { $0[0] * $0[1] }
                checkGradients("b * a", backend: backend, [a, b]) { $0[1] * $0[0] }
            }
        }
    case .div:
        return broadcastCases.map { c in
            check(c.testDescription) { backend in
                // Denominators in ±[0.5, 1.5]: away from zero.
                let a = TestData.normal(c.a, seed: 7)
                let mag = TestData.uniform(c.a, seed: 8, low: 0.5, high: 1.5).values
                let sign = TestData.normal(c.a, seed: 9).values.map { $0 < 0 ? Float(-1) : 1 }
                let aPos = Tensor(zip(mag, sign).map(*), shape: c.a)
                let bPos = TestData.uniform(c.b, seed: 10, low: 0.5, high: 1.5)
                checkGradients("a / b", backend: backend, [a, bPos], eps: 3e-3) { $0[0] / $0[1] }
                checkGradients("b / a", backend: backend, [bPos, aPos], eps: 3e-3) { $0[0] / $0[1] }
            }
        }
    case .addRelu:
        return [
            // Below oneDNN's elementwise threshold, and on the reference backend, addRelu is add + relu.
            check("small: add + relu", recordedOn: []) { backend in
                // a away from 0 by 0.2, |b| < 0.05: a + b stays 0.15 from the kink.
                let b = TestData.uniform([2, 3, 4], seed: 17, low: -0.05, high: 0.05)
                let a = TestData.awayFrom([0], [2, 3, 4], seed: 18, margin: 0.2)
                checkGradients("addRelu", backend: backend, [a, b]) { Tensor.addRelu($0[0], $0[1]) }
            },
            // The fused kernel: a sample of the elements (the op is elementwise).
            check("large: fused on oneDNN", recordedOn: [.onednn]) { backend in
                let shape = [2, 16, 32, 32]
                let b = TestData.uniform(shape, seed: 19, low: -0.05, high: 0.05)
                let a = TestData.awayFrom([0], shape, seed: 20, margin: 0.2)
                #expect(a.count >= DNNLElementwise.threshold)
                checkGradients("addRelu \(shape)", backend: backend, [a, b], sample: 40) { Tensor.addRelu($0[0], $0[1]) }
            },
        ]

    // MARK: Scalar operands and negation
    case .addScalar:
        return [check("x + 2, 2 + x, x - 2") { backend in
            let x = TestData.normal([2, 3, 4], seed: 12)
            checkGradients("x + 2", backend: backend, [x]) { $0[0] + 2 }
            checkGradients("2 + x", backend: backend, [x]) { 2 + $0[0] }
            checkGradients("x - 2", backend: backend, [x]) { $0[0] - 2 }
        }]
    case .mulScalar:
        return [check("x * 3, -1.5 * x, x / 4") { backend in
            let x = TestData.normal([2, 3, 4], seed: 12)
            checkGradients("x * 3", backend: backend, [x]) { $0[0] * 3 }
            checkGradients("-1.5 * x", backend: backend, [x]) { -1.5 * $0[0] }
            checkGradients("x / 4", backend: backend, [x]) { $0[0] / 4 }
        }]
    case .neg:
        return [check("-x, 3 - x") { backend in
            let x = TestData.normal([2, 3, 4], seed: 12)
            checkGradients("-x", backend: backend, [x]) { -$0[0] }
            checkGradients("3 - x", backend: backend, [x]) { 3 - $0[0] }
        }]

    // MARK: Unary functions and activations
    case .exp:
        return [check("exp, exp(2 log x)") { backend in
            let x = TestData.normal([2, 3, 4], seed: 13)
            let pos = TestData.uniform([2, 3, 4], seed: 14, low: 0.5, high: 2)
            checkGradients("exp", backend: backend, [x]) { $0[0].exp() }
            checkGradients("exp(log)", backend: backend, [pos], eps: 3e-3) { ($0[0].log() * 2).exp() }
        }]
    case .log:
        return [check("log") { backend in
            let pos = TestData.uniform([2, 3, 4], seed: 14, low: 0.5, high: 2)
            checkGradients("log", backend: backend, [pos], eps: 3e-3) { $0[0].log() }
        }]
    case .sqrt:
        return [check("sqrt") { backend in
            let pos = TestData.uniform([2, 3, 4], seed: 14, low: 0.5, high: 2)
            checkGradients("sqrt", backend: backend, [pos], eps: 3e-3) { $0[0].sqrt() }
        }]
    case .tanh:
        return [check("tanh") { backend in
            checkGradients("tanh", backend: backend, [TestData.normal([2, 3, 4], seed: 13)]) { $0[0].tanh() }
        }]
    case .sigmoid:
        return [check("sigmoid") { backend in
            checkGradients("sigmoid", backend: backend, [TestData.normal([2, 3, 4], seed: 13)]) { $0[0].sigmoid() }
        }]
    case .relu:
        return [check("relu") { backend in
            let x = TestData.awayFrom([0], [2, 3, 4], seed: 15, margin: 0.1)
            checkGradients("relu", backend: backend, [x]) { $0[0].relu() }
        }]
    case .leakyRelu:
        return [check("slope 0.2 and default") { backend in
            let x = TestData.awayFrom([0], [2, 3, 4], seed: 15, margin: 0.1)
            checkGradients("leakyRelu(0.2)", backend: backend, [x]) { $0[0].leakyRelu(0.2) }
            checkGradients("leakyRelu(default)", backend: backend, [x]) { $0[0].leakyRelu() }
        }]
    case .clamp:
        return [check("clamp(-0.5, 0.7)") { backend in
            let c = TestData.awayFrom([-0.5, 0.7], [2, 3, 4], seed: 16, margin: 0.05)
            checkGradients("clamp(-0.5, 0.7)", backend: backend, [c]) { $0[0].clamp(-0.5, 0.7) }
            // Some elements are clamped on each side, some pass through.
            let v = c.values
            #expect(v.contains { $0 < -0.5 } && v.contains { $0 > 0.7 } && v.contains { $0 > -0.5 && $0 < 0.7 })
        }]

    // MARK: Matrix products
    case .matmul:
        let ab: @Sendable () -> [Tensor] = { [TestData.normal([3, 4], seed: 20), TestData.normal([4, 5], seed: 21)] }
        return [
            check("both") { checkGradients("matmul", backend: $0, ab()) { $0[0].matmul($0[1]) } },
            check("only rhs") { checkGradients("matmul only rhs", backend: $0, ab(), wrt: [1]) { $0[0].matmul($0[1]) } },
            check("only lhs") { checkGradients("matmul only lhs", backend: $0, ab(), wrt: [0]) { $0[0].matmul($0[1]) } },
            check("row vector") { backend in
                let v = TestData.normal([1, 4], seed: 22)
                checkGradients("row vector matmul", backend: backend, [v, ab()[1]]) { $0[0].matmul($0[1]) }
            },
        ]
    case .linear:
        let xwb: @Sendable () -> [Tensor] = {
            [TestData.normal([3, 4], seed: 23), TestData.normal([5, 4], seed: 24), TestData.normal([5], seed: 25)]
        }
        return [
            check("with bias") { backend in
                checkGradients("linear+bias", backend: backend, xwb()) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
            },
            check("no bias") { backend in
                checkGradients("linear", backend: backend, Array(xwb()[0...1])) { Tensor.linear($0[0], weight: $0[1], bias: nil) }
            },
            check("x constant") { backend in
                checkGradients("linear, x constant", backend: backend, xwb(), wrt: [1, 2]) {
                    Tensor.linear($0[0], weight: $0[1], bias: $0[2])
                }
            },
            check("w and b constant") { backend in
                checkGradients("linear, w constant", backend: backend, xwb(), wrt: [0]) {
                    Tensor.linear($0[0], weight: $0[1], bias: $0[2])
                }
            },
        ]

    // MARK: Reductions
    case .sum:
        return [check("sum(), mean(), sum(x²)") { backend in
            let x = TestData.normal([2, 3, 4], seed: 37)
            checkGradients("sum()", backend: backend, [x]) { $0[0].sum() }
            checkGradients("mean()", backend: backend, [x]) { $0[0].mean() }
            checkGradients("sum(x²)", backend: backend, [x]) { ($0[0] * $0[0]).sum() }
        }]
    case .sumAxes:
        return [check("sum and mean over axes") { backend in
            let x = TestData.normal([2, 3, 4], seed: 37)
            checkGradients("sum(axes:[0,2])", backend: backend, [x]) { $0[0].sum(axes: [0, 2]) }
            checkGradients("sum(axes:[1])", backend: backend, [x]) { $0[0].sum(axes: [1]) }
            checkGradients("sum(axes:[-1], keepDims)", backend: backend, [x]) { $0[0].sum(axes: [-1], keepDims: true) }
            checkGradients("sum(axes:[0,1,2])", backend: backend, [x]) { $0[0].sum(axes: [0, 1, 2]) }
            checkGradients("mean(axes:[1])", backend: backend, [x]) { $0[0].mean(axes: [1]) }
            checkGradients("mean(axes:[0,-1], keepDims)", backend: backend, [x]) { $0[0].mean(axes: [0, -1], keepDims: true) }
            checkGradients("x - mean(axes:[2], keepDims)", backend: backend, [x]) {
                let d = $0[0] - $0[0].mean(axes: [2], keepDims: true)
                return d * d
            }
        }]

    // MARK: Shapes
    case .reshape:
        return [check("reshape, flatten") { backend in
            let x = TestData.normal([2, 3, 4], seed: 30), w = TestData.normal([4, 6], seed: 31)
            // A following op that mixes elements makes a wrong element order visible.
            checkGradients("reshape", backend: backend, [x, w]) { $0[0].reshape([-1, 4]).matmul($0[1]) }
            checkGradients("flatten", backend: backend, [x]) { $0[0].flatten() }
            checkGradients("flatten(0,1)", backend: backend, [x]) { $0[0].flatten(from: 0, to: 1) * $0[0].flatten(from: 0, to: 1) }
        }]
    case .permute:
        return [check("permute, transposed") { backend in
            let x = TestData.normal([2, 3, 4], seed: 30), w = TestData.normal([4, 6], seed: 31)
            checkGradients("permute", backend: backend, [x]) { $0[0].permute([2, 0, 1]) * $0[0].permute([2, 0, 1]).exp() }
            checkGradients("permute·matmul", backend: backend, [x, w]) {
                $0[0].permute([1, 0, 2]).reshape([6, 4]).matmul($0[1])
            }
            let x4 = TestData.normal([2, 3, 2, 2], seed: 32)
            checkGradients("permute NCHW→NHWC", backend: backend, [x4]) { $0[0].permute([0, 2, 3, 1]).reshape([8, 3]).sigmoid() }
            checkGradients("transposed", backend: backend, [w]) { $0[0].transposed().matmul($0[0]) }
            checkGradients("transposed(1,2)", backend: backend, [x]) { $0[0].transposed(1, 2).tanh() }
        }]
    case .concat:
        return [0, 1, 2].map { axis in
            check("axis \(axis)") { backend in
                var s1 = [2, 3, 4], s2 = [2, 3, 4], s3 = [2, 3, 4]
                s1[axis] = 1; s2[axis] = 2; s3[axis] = 3
                let a = TestData.normal(s1, seed: 33), b = TestData.normal(s2, seed: 34), c = TestData.normal(s3, seed: 35)
                checkGradients("concat axis \(axis)", backend: backend, [a, b, c]) { Tensor.concat($0, axis: axis) }
                checkGradients("concat axis \(axis) with reuse", backend: backend, [a, b]) {
                    Tensor.concat([$0[0], $0[1], $0[0]], axis: axis).tanh()
                }
            }
        }
    case .slice:
        return [0, 1, 2].map { axis in
            check("axis \(axis)") { backend in
                let x = TestData.normal([3, 4, 5], seed: 36)
                checkGradients("slice axis \(axis)", backend: backend, [x]) { $0[0].slice(axis: axis, 1..<3) }
                checkGradients("two slices axis \(axis)", backend: backend, [x]) {
                    $0[0].slice(axis: axis, 0..<2) * $0[0].slice(axis: axis, 1..<3)
                }
            }
        }

    // MARK: Convolutions
    case .conv:
        return conv2dGradCases.map { c in
            check("conv2d \(c.name)") { backend in
                checkGradients("conv2d \(c.name)", backend: backend, convInputs(.conv2d, c)) { applyConv(.conv2d, c, $0) }
            }
        } + conv1dGradCases.map { c in
            check("conv1d \(c.name)") { backend in
                checkGradients("conv1d \(c.name)", backend: backend, convInputs(.conv1d, c)) { applyConv(.conv1d, c, $0) }
            }
        } + partialRequiresGrad.map { wrt in
            // Only some of input/weight/bias require grad: the others get none.
            check("conv2d wrt \(wrt)") { backend in
                let c = conv2dGradCases[2]
                checkGradients("conv2d wrt \(wrt)", backend: backend, convInputs(.conv2d, c), wrt: wrt) { applyConv(.conv2d, c, $0) }
            }
        }
    case .convTranspose:
        return convT2dGradCases.map { c in
            check("convTranspose2d \(c.name)") { backend in
                checkGradients("convTranspose2d \(c.name)", backend: backend, convInputs(.convT2d, c)) { applyConv(.convT2d, c, $0) }
            }
        } + convT1dGradCases.map { c in
            check("convTranspose1d \(c.name)") { backend in
                checkGradients("convTranspose1d \(c.name)", backend: backend, convInputs(.convT1d, c)) { applyConv(.convT1d, c, $0) }
            }
        } + partialRequiresGrad.map { wrt in
            check("convTranspose2d wrt \(wrt)") { backend in
                let c = convT2dGradCases[2]
                checkGradients("convT2d wrt \(wrt)", backend: backend, convInputs(.convT2d, c), wrt: wrt) { applyConv(.convT2d, c, $0) }
            }
        }

    // MARK: Pooling
    case .maxPool:
        return [
            check("maxPool2d") { backend in
                // Distinct values 0.1 apart: no ties, and a ±0.01 step never changes a window's maximum.
                let x = TestData.distinct([2, 2, 5, 6], seed: 40)
                checkGradients("maxPool2d k2", backend: backend, [x]) { $0[0].maxPool2d(kernel: (2, 2)) }
                checkGradients("maxPool2d k3 s2 p1", backend: backend, [x]) {
                    $0[0].maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
                }
                checkGradients("maxPool2d k(2,3) s(1,2) overlapping", backend: backend, [x]) {
                    $0[0].maxPool2d(kernel: (2, 3), stride: (1, 2))
                }
                let neg = TestData.distinct([1, 2, 4, 4], seed: 41)
                checkGradients("maxPool2d of negatives with padding", backend: backend, [neg]) {
                    ($0[0] - 10).maxPool2d(kernel: (2, 2), stride: (1, 1), padding: (1, 1))
                }
            },
            check("maxPool1d") { backend in
                let x = TestData.distinct([2, 3, 7], seed: 43)
                checkGradients("maxPool1d k2", backend: backend, [x]) { $0[0].maxPool1d(kernel: 2) }
                checkGradients("maxPool1d k3 s2 p1", backend: backend, [x]) { $0[0].maxPool1d(kernel: 3, stride: 2, padding: 1) }
            },
        ]
    case .avgPool:
        return [true, false].map { countIncludePad in
            check("avgPool2d countIncludePad=\(countIncludePad)") { backend in
                let x = TestData.normal([2, 2, 5, 6], seed: 42)
                checkGradients("avgPool2d k2", backend: backend, [x]) {
                    $0[0].avgPool2d(kernel: (2, 2), countIncludePad: countIncludePad)
                }
                checkGradients("avgPool2d k3 s2 p1 include=\(countIncludePad)", backend: backend, [x]) {
                    $0[0].avgPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1), countIncludePad: countIncludePad)
                }
                checkGradients("avgPool2d k(2,3) s1 p(1,1) include=\(countIncludePad)", backend: backend, [x]) {
                    $0[0].avgPool2d(kernel: (2, 3), stride: (1, 1), padding: (1, 1), countIncludePad: countIncludePad)
                }
            }
        } + [
            check("avgPool1d") { backend in
                let y = TestData.normal([2, 3, 7], seed: 44)
                checkGradients("avgPool1d k2", backend: backend, [y]) { $0[0].avgPool1d(kernel: 2) }
                checkGradients("avgPool1d k3 s2 p1", backend: backend, [y]) { $0[0].avgPool1d(kernel: 3, stride: 2, padding: 1) }
                checkGradients("avgPool1d k3 s1 p1 exclude", backend: backend, [y]) {
                    $0[0].avgPool1d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
                }
            },
            check("globalAvgPool") { backend in
                let x4 = TestData.normal([2, 3, 4, 5], seed: 45)
                checkGradients("globalAvgPool 4-D", backend: backend, [x4]) { $0[0].globalAvgPool() }
                let x3 = TestData.normal([2, 3, 7], seed: 46)
                checkGradients("globalAvgPool 3-D", backend: backend, [x3]) { $0[0].globalAvgPool() }
            },
        ]

    // MARK: Batch normalisation
    case .batchNorm:
        return [[6, 3], [3, 2, 5], [2, 3, 3, 2], [2, 2, 2, 3]].flatMap { shape in
            [false, true].map { fuseReLU in
                check("training \(shape) fuseReLU=\(fuseReLU)") { backend in
                    batchNormTrainingGradientCheck(backend, shape: shape, fuseReLU: fuseReLU)
                }
            }
        } + [false, true].map { fuseReLU in
            check("eval fuseReLU=\(fuseReLU)") { backend in batchNormEvalGradientCheck(backend, fuseReLU: fuseReLU) }
        }

    // MARK: Losses and log-softmax
    case .logSoftmax:
        return [check("2-D and 3-D") { backend in
            let x = TestData.normal([3, 5], seed: 80, std: 2)
            checkGradients("logSoftmax", backend: backend, [x]) { $0[0].logSoftmax() }
            let x3 = TestData.normal([2, 2, 4], seed: 81)
            checkGradients("logSoftmax 3-D", backend: backend, [x3]) { $0[0].logSoftmax() }
        }]
    case .crossEntropy:
        return [check("logits, and through a linear layer") { backend in
            let x = TestData.normal([4, 5], seed: 82, std: 2)
            let labels = [2, 0, 4, 2]
            checkGradients("crossEntropy", backend: backend, [x]) { Tensor.crossEntropy($0[0], labels: labels) }
            let w = TestData.normal([5, 3], seed: 83), h = TestData.normal([4, 3], seed: 84)
            checkGradients("crossEntropy∘linear", backend: backend, [h, w]) {
                Tensor.crossEntropy(Tensor.linear($0[0], weight: $0[1], bias: nil), labels: labels)
            }
        }]
    case .mse:
        return [check("both inputs, prediction only, of tanh") { backend in
            let p = TestData.normal([3, 4], seed: 85), t = TestData.normal([3, 4], seed: 86)
            checkGradients("mse", backend: backend, [p, t]) { Tensor.mse($0[0], $0[1]) }
            checkGradients("mse wrt prediction", backend: backend, [p, t], wrt: [0]) { Tensor.mse($0[0], $0[1]) }
            checkGradients("mse of tanh", backend: backend, [p, t]) { Tensor.mse($0[0].tanh(), $0[1]) }
        }]

    // MARK: Gradient scaling and custom gradients
    case .gradientScale:
        // The forward is the identity and the backward multiplies by `s`, which is not the
        // derivative: a custom op in front divides the gradient by `s` again, so the whole is
        // the identity (times a tanh) and finite differences apply; a wrong factor fails.
        return [1, 0.25, -2].map { (s: Float) in
            check("scale \(s)") { backend in
                let x = TestData.normal([3, 4], seed: 96)
                checkGradients("gradientScaled(by: \(s)) after ×1/\(s)", backend: backend, [x]) { t in
                    let x = t[0]
                    let unscaled = Autograd.noGrad { x * 1 }.withCustomGradient("unscale", inputs: [x]) { g in [g * (1 / s)] }
                    return unscaled.gradientScaled(by: s).tanh()
                }
            }
        }
    case .custom:
        // `withCustomGradient` routes each input's gradient from the backward it is given.
        return [check("a·b with a hand-written backward") { backend in
            let a = TestData.normal([3, 4], seed: 97), b = TestData.normal([4], seed: 98)
            checkGradients("custom a·b", backend: backend, [a, b]) { t in
                let (p, q) = (t[0], t[1])
                let y = Autograd.noGrad { p * q }.withCustomGradient("product", inputs: [p, q]) { g in
                    [g * q, (g * p).sumToShape(q.shape)]
                }
                return y.tanh()
            }
            checkGradients("custom a·b, only b", backend: backend, [a, b], wrt: [1]) { t in
                let (p, q) = (t[0], t[1])
                return Autograd.noGrad { p * q }.withCustomGradient("product", inputs: [p, q]) { g in
                    [nil, (g * p).sumToShape(q.shape)]
                }
            }
        }]
    }
}

/// The input subsets of the convolutions' partial-`requiresGrad` checks.
let partialRequiresGrad: [[Int]] = [[0], [1], [2], [1, 2]]

/// Every op's checks, flattened for `@Test(arguments:)`.
let allOpGradientChecks: [OpGradientCheck] = Op.allCases.flatMap(gradientChecks(of:))

@Suite("Gradient checks: every recorded op")
struct OpGradientTests {
    /// One check on one backend; where the check's op is recorded on this backend, some graph
    /// it checked must contain it.
    @Test(arguments: allOpGradientChecks, allBackends)
    func gradient(check: OpGradientCheck, backend: KernelBackend) {
        let recorded = CheckedOps.collect { check.run(backend) }
        if check.recordedOn.contains(backend) {
            #expect(recorded.contains(check.op), """
                \(check.testDescription) [\(backend)]: the checked graphs recorded \
                \(recorded.map(\.rawValue).sorted()), not \(check.op)
                """)
        }
    }

    /// Every `Op` case, `custom` included (the plumbing of `withCustomGradient`), has at least
    /// one check whose graphs record it: adding an op without a gradient check fails here.
    @Test func everyOpHasAGradientCheck() {
        let unchecked = Op.allCases.filter { op in !gradientChecks(of: op).contains { !$0.recordedOn.isEmpty } }
        #expect(unchecked.isEmpty, "ops without a gradient check: \(unchecked.map(\.rawValue))")
    }
}

// MARK: - Elementwise cases

/// Shapes for a binary op: the first operand is [2, 3, 4] (or the listed shape), the second
/// is broadcast against it (and the reverse order is checked too).
struct BroadcastCase: Sendable, CustomTestStringConvertible {
    var a: [Int], b: [Int]
    var testDescription: String { "\(a) ⊕ \(b)" }
}

let broadcastCases: [BroadcastCase] = [
    BroadcastCase(a: [2, 3, 4], b: [2, 3, 4]),
    BroadcastCase(a: [2, 3, 4], b: [3, 1]),
    BroadcastCase(a: [2, 3, 4], b: [4]),
    BroadcastCase(a: [2, 3, 4], b: []),
    BroadcastCase(a: [2, 3, 4], b: [1]),
    BroadcastCase(a: [2, 3, 4], b: [2, 1, 4]),
    BroadcastCase(a: [2, 1, 4], b: [3, 1]),      // both operands broadcast
    BroadcastCase(a: [3, 1], b: [1, 5]),
]

/// Gradient checks of compositions rather than of one op.
@Suite("Gradient checks: compositions")
struct CompositionGradientTests {
    @Test(arguments: allBackends)
    func sameTensorTwice(backend: KernelBackend) {
        let a = TestData.normal([3, 4], seed: 11)
        checkGradients("a * a", backend: backend, [a]) { $0[0] * $0[0] }
        checkGradients("a + a", backend: backend, [a]) { $0[0] + $0[0] }
        checkGradients("a - a*a", backend: backend, [a]) { $0[0] - $0[0] * $0[0] }
        checkGradients("square", backend: backend, [a]) { $0[0].square() }
    }

    @Test(arguments: allBackends)
    func dropoutNumerical(backend: KernelBackend) {
        let x = TestData.normal([4, 5], seed: 87)
        checkGradients("dropout(0.3)", backend: backend, [x]) {
            var g = SeededGenerator(seed: 5)
            return $0[0].dropout(0.3, training: true, generator: &g)
        }
    }

    @Test(arguments: allBackends)
    func dropoutGradientIsMask(backend: KernelBackend) {
        let p: Float = 0.4
        var g2 = SeededGenerator(seed: 123)
        let x0 = TestData.normal([6, 7], seed: 88), seed = TestData.normal([6, 7], seed: 89)
        let mask = (0..<x0.count).map { _ in g2.nextUniform() < p ? Float(0) : 1 / (1 - p) }
        #expect(mask.contains(0) && mask.contains(1 / (1 - p)))
        let r = onBackend(backend) {
            let x = TestData.leaf(x0)
            var g = SeededGenerator(seed: 123)
            let y = x.dropout(p, training: true, generator: &g)
            y.backward(seed)
            let seeded = x.grad!.values
            // Same generator state again: the same mask.
            x.grad = nil
            var g3 = SeededGenerator(seed: 123)
            x.dropout(p, training: true, generator: &g3).sum().backward()
            // Eval mode and p = 0 are the identity.
            var g4 = SeededGenerator(seed: 1)
            let eval = x.dropout(p, training: false, generator: &g4).values
            let p0 = x.dropout(0, training: true, generator: &g4).values
            return (y.values, seeded, x.grad!.values, eval, p0)
        }
        expectValues(r.0, zip(mask, x0.values).map(*), atol: 1e-6, "dropout forward = mask ⊙ x")
        expectValues(r.1, zip(mask, seed.values).map(*), atol: 1e-6, "dropout grad = mask ⊙ seed")
        expectValues(r.2, mask, atol: 1e-6, "dropout grad = mask")
        expectValues(r.3, x0.values, atol: 0, "dropout in eval mode")
        expectValues(r.4, x0.values, atol: 0, "dropout with p = 0")
    }
}

// MARK: - Convolutions

/// A small convolution (or transposed convolution) case for the gradient checker.
struct ConvGradCase: Sendable, CustomTestStringConvertible {
    var name: String
    var x: [Int]
    var w: [Int]
    var stride = (1, 1), padding = (0, 0), dilation = (1, 1), outputPadding = (0, 0)
    var groups = 1
    var bias = true
    var activation: FusedActivation = .none
    var testDescription: String { name }
}

let conv2dGradCases: [ConvGradCase] = [
    ConvGradCase(name: "basic", x: [2, 3, 5, 5], w: [4, 3, 3, 3]),
    ConvGradCase(name: "no bias", x: [1, 3, 4, 5], w: [2, 3, 3, 3], bias: false),
    ConvGradCase(name: "stride 2 pad 1", x: [2, 2, 5, 6], w: [3, 2, 3, 3], stride: (2, 2), padding: (1, 1)),
    ConvGradCase(name: "stride (1,3) pad (2,0)", x: [1, 2, 4, 7], w: [3, 2, 3, 2], stride: (1, 3), padding: (2, 0)),
    ConvGradCase(name: "dilation 2 pad 2", x: [1, 2, 6, 6], w: [3, 2, 3, 3], padding: (2, 2), dilation: (2, 2)),
    ConvGradCase(name: "groups 2", x: [2, 4, 4, 5], w: [6, 2, 3, 3], padding: (1, 1), groups: 2),
    ConvGradCase(name: "depthwise", x: [1, 4, 5, 5], w: [4, 1, 3, 3], stride: (2, 2), padding: (1, 1), groups: 4),
    ConvGradCase(name: "kernel 1", x: [2, 3, 3, 4], w: [5, 3, 1, 1]),
    ConvGradCase(name: "fused relu", x: [1, 2, 4, 4], w: [3, 2, 3, 3], padding: (1, 1), activation: .relu),
    ConvGradCase(name: "fused leakyRelu", x: [1, 2, 4, 4], w: [3, 2, 3, 3], padding: (1, 1), activation: .leakyRelu(0.2)),
    ConvGradCase(name: "fused leakyRelu, groups 2, stride 2", x: [2, 4, 5, 5], w: [4, 2, 3, 3], stride: (2, 2),
                 padding: (1, 1), groups: 2, activation: .leakyRelu(0.1)),
    ConvGradCase(name: "fused tanh", x: [1, 2, 4, 4], w: [3, 2, 3, 3], padding: (1, 1), activation: .tanh),
]

let conv1dGradCases: [ConvGradCase] = [
    ConvGradCase(name: "basic", x: [2, 3, 7], w: [4, 3, 3]),
    ConvGradCase(name: "stride 2 pad 1 no bias", x: [2, 2, 8], w: [3, 2, 3], stride: (1, 2), padding: (0, 1), bias: false),
    ConvGradCase(name: "dilation 2 pad 2", x: [1, 2, 9], w: [3, 2, 3], padding: (0, 2), dilation: (1, 2)),
    ConvGradCase(name: "groups 2", x: [2, 4, 6], w: [6, 2, 2], groups: 2),
    ConvGradCase(name: "fused leakyRelu", x: [1, 3, 8], w: [4, 3, 3], padding: (0, 1), activation: .leakyRelu(0.2)),
]

let convT2dGradCases: [ConvGradCase] = [
    ConvGradCase(name: "basic", x: [2, 3, 3, 4], w: [3, 2, 3, 3]),
    ConvGradCase(name: "no bias", x: [1, 3, 3, 3], w: [3, 2, 2, 2], bias: false),
    ConvGradCase(name: "stride 2 pad 1 outpad 1", x: [1, 3, 3, 3], w: [3, 2, 3, 3], stride: (2, 2), padding: (1, 1),
                 outputPadding: (1, 1)),
    ConvGradCase(name: "stride (3,2) outpad (2,1)", x: [1, 2, 2, 3], w: [2, 3, 3, 2], stride: (3, 2),
                 outputPadding: (2, 1)),
    ConvGradCase(name: "dilation 2 pad 1", x: [1, 2, 3, 3], w: [2, 2, 3, 3], padding: (1, 1), dilation: (2, 2)),
    ConvGradCase(name: "groups 2 stride 2", x: [2, 4, 3, 3], w: [4, 3, 3, 3], stride: (2, 2), padding: (1, 1), groups: 2),
    ConvGradCase(name: "depthwise", x: [1, 3, 3, 4], w: [3, 1, 3, 3], stride: (2, 2), groups: 3),
    ConvGradCase(name: "fused relu", x: [1, 2, 3, 3], w: [2, 3, 3, 3], stride: (2, 2), activation: .relu),
    ConvGradCase(name: "fused tanh", x: [1, 2, 3, 3], w: [2, 3, 3, 3], stride: (2, 2), activation: .tanh),
]

let convT1dGradCases: [ConvGradCase] = [
    ConvGradCase(name: "basic", x: [2, 3, 5], w: [3, 2, 3]),
    ConvGradCase(name: "stride 2 pad 1 outpad 1", x: [2, 2, 4], w: [2, 3, 3], stride: (1, 2), padding: (0, 1),
                 outputPadding: (0, 1)),
    ConvGradCase(name: "dilation 2 groups 2 no bias", x: [1, 4, 4], w: [4, 2, 3], dilation: (1, 2), groups: 2, bias: false),
    ConvGradCase(name: "stride 3 outpad 2 fused leaky", x: [1, 2, 3], w: [2, 2, 2], stride: (1, 3), outputPadding: (0, 2),
                 activation: .leakyRelu(0.3)),
]

enum ConvKind { case conv2d, conv1d, convT2d, convT1d }

/// Applies the case's op to `(x, w, b?)`.
func applyConv(_ kind: ConvKind, _ c: ConvGradCase, _ t: [Tensor], activation: FusedActivation? = nil) -> Tensor {
    let b = c.bias ? t[2] : nil
    let act = activation ?? c.activation
    switch kind {
    case .conv2d:
        return Tensor.conv2d(t[0], weight: t[1], bias: b, stride: c.stride, padding: c.padding, dilation: c.dilation,
                             groups: c.groups, activation: act)
    case .conv1d:
        return Tensor.conv1d(t[0], weight: t[1], bias: b, stride: c.stride.1, padding: c.padding.1,
                             dilation: c.dilation.1, groups: c.groups, activation: act)
    case .convT2d:
        return Tensor.convTranspose2d(t[0], weight: t[1], bias: b, stride: c.stride, padding: c.padding,
                                      outputPadding: c.outputPadding, dilation: c.dilation, groups: c.groups,
                                      activation: act)
    case .convT1d:
        return Tensor.convTranspose1d(t[0], weight: t[1], bias: b, stride: c.stride.1, padding: c.padding.1,
                                      outputPadding: c.outputPadding.1, dilation: c.dilation.1, groups: c.groups,
                                      activation: act)
    }
}

/// Inputs for a case; with a fused activation, the seed is chosen so that no pre-activation
/// output lies within `margin` of the kink at 0 (a finite difference would straddle it).
func convInputs(_ kind: ConvKind, _ c: ConvGradCase, margin: Float = 0.08) -> [Tensor] {
    let outChannels = (kind == .convT2d || kind == .convT1d) ? c.w[1] * c.groups : c.w[0]
    for seed in UInt64(100)..<UInt64(2000) {
        var t = [TestData.normal(c.x, seed: seed), TestData.normal(c.w, seed: seed &+ 7919)]
        if c.bias { t.append(TestData.normal([outChannels], seed: seed &+ 104_729)) }
        if c.activation == .none { return t }
        let pre = Engine.withBackend(.reference) { Autograd.noGrad { applyConv(kind, c, t, activation: FusedActivation.none) } }
        let v = pre.values
        if v.allSatisfy({ abs($0) > margin }) && v.contains(where: { $0 < 0 }) && v.contains(where: { $0 > 0 }) {
            return t
        }
    }
    fatalError("no seed keeps \(c.name) away from the activation's kink")
}

// MARK: - Batch normalisation

/// Batch norm with fresh running statistics (so repeated evaluations are identical).
func bnTrain(_ t: [Tensor], fuseReLU: Bool = false) -> Tensor {
    let c = t[0].shape[1]
    return Tensor.batchNorm(t[0], scale: t[1], shift: t[2], runningMean: .zeros([c]), runningVar: .ones([c]),
                            training: true, fuseReLU: fuseReLU)
}

/// Inputs `(x, scale, shift)` whose normalised (pre-ReLU) outputs stay away from 0.
func bnInputs(_ shape: [Int], seed: UInt64, avoidKinkMargin: Float? = nil) -> [Tensor] {
    let c = shape[1]
    for s in seed..<(seed + 5000) {
        let t = [TestData.normal(shape, seed: s, std: 2, mean: 0.5),
                 TestData.uniform([c], seed: s &+ 1, low: 0.5, high: 1.5),
                 TestData.normal([c], seed: s &+ 2, std: 0.5)]
        guard let margin = avoidKinkMargin else { return t }
        let pre = Engine.withBackend(.reference) { Autograd.noGrad { bnTrain(t) } }.values
        if pre.allSatisfy({ abs($0) > margin }) { return t }
    }
    fatalError("no seed keeps batch norm of \(shape) away from the ReLU kink")
}

/// Gradient check of training-mode batch norm on `backend`.
func batchNormTrainingGradientCheck(_ backend: KernelBackend, shape: [Int], fuseReLU: Bool) {
    let inputs = fuseReLU ? bnInputs(shape, seed: 60, avoidKinkMargin: 0.06) : bnInputs(shape, seed: 50)
    checkGradients("batchNorm train fuseReLU=\(fuseReLU) \(shape)", backend: backend, inputs, eps: 3e-3) {
        bnTrain($0, fuseReLU: fuseReLU)
    }
}

/// Gradient check of evaluation-mode batch norm (running statistics fixed) on `backend`.
func batchNormEvalGradientCheck(_ backend: KernelBackend, fuseReLU: Bool) {
    for shape in [[4, 3], [2, 3, 4], [2, 3, 2, 3]] {
        let rm = TestData.normal([3], seed: 70, std: 0.3), rv = TestData.uniform([3], seed: 71, low: 0.5, high: 2)
        var inputs = bnInputs(shape, seed: 72)
        if fuseReLU {
            // Choose the seed so that no output is near the kink (eval mode is affine per channel).
            for s in UInt64(72)..<5000 {
                inputs = bnInputs(shape, seed: s)
                let pre = Engine.withBackend(.reference) {
                    Tensor.batchNorm(inputs[0], scale: inputs[1], shift: inputs[2], runningMean: rm, runningVar: rv,
                                     training: false)
                }.values
                if pre.allSatisfy({ abs($0) > 0.05 }) && pre.contains(where: { $0 < 0 }) { break }
            }
        }
        checkGradients("batchNorm eval fuseReLU=\(fuseReLU) \(shape)", backend: backend, inputs) {
            Tensor.batchNorm($0[0], scale: $0[1], shift: $0[2], runningMean: rm, runningVar: rv, training: false,
                             fuseReLU: fuseReLU)
        }
    }
}

// MARK: - The checker itself

/// The gradient checker must reject a backward that is off by a factor of 2, has the wrong
/// sign, or routes gradients to the wrong elements — otherwise the checks above prove nothing.
@Suite("Gradient checker self-test")
struct GradientCheckerSelfTests {
    /// `y = 3x` with a hand-written backward.
    static func scaled(_ x: Tensor, backward: @escaping (Tensor) -> Tensor) -> Tensor {
        Autograd.noGrad { x * 3 }.withCustomGradient("scaled", inputs: [x]) { g in [backward(g)] }
    }

    @Test(arguments: allBackends)
    func correctBackwardPasses(backend: KernelBackend) {
        let x = TestData.normal([3, 4], seed: 90)
        checkGradients("correct", backend: backend, [x]) { Self.scaled($0[0]) { $0 * 3 } }
    }

    @Test(arguments: allBackends)
    func wrongScaleFails(backend: KernelBackend) {
        let x = TestData.normal([3, 4], seed: 91)
        withKnownIssue("a factor of 2 must be caught") {
            checkGradients("factor 2", backend: backend, [x]) { Self.scaled($0[0]) { $0 * 6 } }
        }
        withKnownIssue("a 1% scale error must be caught") {
            checkGradients("factor 1.03", backend: backend, [x]) { Self.scaled($0[0]) { $0 * 3.09 } }
        }
    }

    @Test(arguments: allBackends)
    func wrongSignFails(backend: KernelBackend) {
        let x = TestData.normal([3, 4], seed: 92)
        withKnownIssue("a flipped sign must be caught") {
            checkGradients("sign", backend: backend, [x]) { Self.scaled($0[0]) { $0 * -3 } }
        }
    }

    @Test(arguments: allBackends)
    func wrongIndexFails(backend: KernelBackend) {
        let x = TestData.normal([3, 4], seed: 93)
        // The forward transposes; a backward that only reshapes keeps the shape but not the order.
        withKnownIssue("a transposed index must be caught") {
            checkGradients("transposed index", backend: backend, [x]) {
                let xt = $0[0]
                return Autograd.noGrad { xt.transposed() }.withCustomGradient("badTranspose", inputs: [xt]) { g in [g.reshape([3, 4])] }
            }
        }
        // One element's gradient goes to its neighbour.
        withKnownIssue("a shifted index must be caught") {
            checkGradients("shifted index", backend: backend, [x]) { t in
                Self.scaled(t[0]) { g in
                    var v = g.values
                    v.swapAt(4, 5)
                    return Tensor(v, shape: g.shape) * 3
                }
            }
        }
    }

    @Test(arguments: allBackends)
    func missingGradientFails(backend: KernelBackend) {
        let a = TestData.normal([3], seed: 94), b = TestData.normal([3], seed: 95)
        withKnownIssue("an input left without gradient must be caught") {
            checkGradients("dropped input", backend: backend, [a, b]) {
                let (p, q) = ($0[0], $0[1])
                return Autograd.noGrad { p * q }.withCustomGradient("dropsB", inputs: [p, q]) { g in [g * q, nil] }
            }
        }
    }
}
