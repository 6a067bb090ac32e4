import Foundation
import Autograd

/// Rectified-flow action generation exactly as the InstructVLA reference code does it (its paper's
/// Eq. 8 has the sign flipped; the code is authoritative):
///   t = 0.999·(1 − z), z ~ Beta(1.5, 1)          (noisy, small-t steps oversampled)
///   x_t = (1 − (1 − σ)·t)·ε + t·A,  σ = 0.001      (ε ~ N(0, I), A the normalised chunk)
///   target u = A − (1 − σ)·ε,  loss = mean((v − u)²)
/// and at inference 10 Euler steps x += Δt·v(x, t) from t = 0.
public enum FlowMatching {
    public static let sigmaMin: Float = 0.001

    /// Beta(1.5, 1) has CDF z^1.5, so z = u^(1/1.5) for u ~ U(0, 1).
    public static func sampleTime(rng: inout RNG) -> Float {
        let z = Foundation.pow(rng.uniform(), 1 / 1.5)
        return 0.999 * (1 - z)
    }

    /// x_t and the velocity target for one sample (flattened chunk).
    public static func interpolate(actions: ArraySlice<Float>, noise: ArraySlice<Float>, t: Float) -> (noisy: [Float], target: [Float]) {
        let keep = 1 - (1 - sigmaMin) * t
        let noisy = zip(actions, noise).map { keep * $1 + t * $0 }
        let target = zip(actions, noise).map { $0 - (1 - sigmaMin) * $1 }
        return (noisy, target)
    }

    /// Integrates the velocity field from `noise` [B, H, A] at t = 0 to t = 1 in `steps` Euler steps.
    public static func sample(noise: Tensor, steps: Int = 10, velocity: (Tensor, [Float]) -> Tensor) -> Tensor {
        let dt = 1 / Float(steps)
        var x = noise
        for i in 0..<steps {
            let t = Float(i) * dt
            x = x + velocity(x, Array(repeating: t, count: x.shape[0])) * dt
        }
        return x
    }
}
