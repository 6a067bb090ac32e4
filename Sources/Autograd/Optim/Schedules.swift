import Foundation

/// A learning rate as a function of the (0-based) update index.
public protocol LearningRateSchedule: Sendable {
    func learningRate(at step: Int) -> Float
}

public struct ConstantSchedule: LearningRateSchedule {
    public let value: Float
    public init(_ value: Float) { self.value = value }
    public func learningRate(at step: Int) -> Float { value }
}

/// Linear warmup from peak/warmupSteps up to `peak`, then a half cosine down to `peak · minRatio`
/// at `totalSteps` (and flat after).
public struct WarmupCosineSchedule: LearningRateSchedule {
    public let peak: Float, warmupSteps: Int, totalSteps: Int, minRatio: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, minRatio: Float = 0) {
        precondition(warmupSteps >= 0 && totalSteps >= warmupSteps,
                     "WarmupCosineSchedule: need 0 <= warmupSteps (\(warmupSteps)) <= totalSteps (\(totalSteps))")
        (self.peak, self.warmupSteps, self.totalSteps, self.minRatio) = (peak, warmupSteps, totalSteps, minRatio)
    }

    public func learningRate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Float(step - warmupSteps) / Float(span), 1)
        let floor = peak * minRatio
        return floor + (peak - floor) * 0.5 * (1 + Foundation.cos(Float.pi * progress))
    }
}
