import Foundation

/// A learning rate as a function of the step number (0-based).
public protocol LearningRateSchedule: Sendable {
    func learningRate(at step: Int) -> Float
}

/// Multiplies the base rate by `gamma` every `stepSize` steps, after a linear warm-up.
public struct StepSchedule: LearningRateSchedule {
    public var base: Float, stepSize: Int, gamma: Float, warmupSteps: Int
    public init(base: Float, stepSize: Int, gamma: Float = 0.1, warmupSteps: Int = 0) {
        precondition(stepSize > 0, "stepSize must be positive")
        self.base = base; self.stepSize = stepSize; self.gamma = gamma; self.warmupSteps = warmupSteps
    }
    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        return base * Float(pow(Double(gamma), Double((step - warmupSteps) / stepSize)))
    }
}

/// Linear warm-up to `base`, then cosine decay to `minimum` at `totalSteps`.
public struct CosineSchedule: LearningRateSchedule {
    public var base: Float, totalSteps: Int, warmupSteps: Int, minimum: Float
    public init(base: Float, totalSteps: Int, warmupSteps: Int = 0, minimum: Float = 0) {
        precondition(totalSteps > warmupSteps, "totalSteps must exceed warmupSteps")
        self.base = base; self.totalSteps = totalSteps; self.warmupSteps = warmupSteps; self.minimum = minimum
    }
    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
        let t = min(1, Double(step - warmupSteps) / Double(totalSteps - warmupSteps))
        return minimum + (base - minimum) * Float(0.5 * (1 + cos(Double.pi * t)))
    }
}
