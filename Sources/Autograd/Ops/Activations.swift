import Foundation

// Pointwise activations: GELU (tanh approximation or exact erf), SiLU, ReLU. Each is a value and a
// derivative over 16 lanes; `pointwise` turns the pair into a recorded op.

protocol PointwiseRule {
    static func value(_ x: SIMD16<Float>) -> SIMD16<Float>
    /// dy/dx at x
    static func derivative(_ x: SIMD16<Float>) -> SIMD16<Float>
}

private func pointwise<R: PointwiseRule>(_: R.Type, _ x: Tensor) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    mapVectors(x.count, x.pointer, out.pointer, R.value)
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        let n = x.count, gx = x.gradPointer(), px = x.pointer, pg = g.pointer
        var i = 0
        while i + 16 <= n {
            storeVector(loadVector(gx + i) + loadVector(pg + i) * R.derivative(loadVector(px + i)), gx + i)
            i += 16
        }
        if i < n {
            let d = TensorStorage(uninitializedCount: n - i)
            mapVectors(n - i, px + i, d.pointer, R.derivative)
            for j in 0..<(n - i) { gx[i + j] += pg[i + j] * d.pointer[j] }
        }
    }
}

/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): PyTorch's `gelu(approximate="tanh")`, HF "gelu_pytorch_tanh".
enum GELUTanhRule: PointwiseRule {
    static let k: Float = 0.7978845608028654  // √(2/π)
    @inline(__always) static func value(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let x3: SIMD16<Float> = x * x * x
        let t: SIMD16<Float> = tanh(k * (x + 0.044715 * x3))
        return 0.5 * x * (1 + t)
    }
    @inline(__always) static func derivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let x2: SIMD16<Float> = x * x
        let t: SIMD16<Float> = tanh(k * (x + 0.044715 * x2 * x))
        let du: SIMD16<Float> = k * (1 + 0.134145 * x2)  // d/dx of √(2/π)(x + 0.044715x³)
        let sech2: SIMD16<Float> = 1 - t * t
        return 0.5 * (1 + t) + 0.5 * x * sech2 * du
    }
}

/// x·Φ(x) with the exact normal CDF: PyTorch's default `gelu`.
enum GELUErfRule: PointwiseRule {
    @inline(__always) static func value(_ x: SIMD16<Float>) -> SIMD16<Float> {
        var y = x
        for i in 0..<16 { y[i] = 0.5 * x[i] * (1 + Foundation.erf(x[i] * 0.7071067811865476)) }
        return y
    }
    @inline(__always) static func derivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        // Φ(x) + x·φ(x)
        var d = x
        for i in 0..<16 {
            let cdf = 0.5 * (1 + Foundation.erf(x[i] * 0.7071067811865476))
            d[i] = cdf + x[i] * Foundation.exp(-0.5 * x[i] * x[i]) * 0.3989422804014327
        }
        return d
    }
}

/// x·σ(x), a.k.a. swish.
enum SiLURule: PointwiseRule {
    @inline(__always) static func value(_ x: SIMD16<Float>) -> SIMD16<Float> { x * sigmoid(x) }
    @inline(__always) static func derivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let s: SIMD16<Float> = sigmoid(x)
        let oneMinus: SIMD16<Float> = 1 - s
        return s * (1 + x * oneMinus)
    }
}

enum ReLURule: PointwiseRule {
    @inline(__always) static func value(_ x: SIMD16<Float>) -> SIMD16<Float> { pointwiseMax(x, SIMD16(repeating: 0)) }
    @inline(__always) static func derivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        SIMD16(repeating: 0).replacing(with: 1, where: x .> 0)
    }
}

public enum GELUApproximation: Sendable { case none, tanh }

public func gelu(_ x: Tensor, approximation: GELUApproximation = .none) -> Tensor {
    approximation == .tanh ? pointwise(GELUTanhRule.self, x) : pointwise(GELUErfRule.self, x)
}

public func silu(_ x: Tensor) -> Tensor { pointwise(SiLURule.self, x) }

public func relu(_ x: Tensor) -> Tensor { pointwise(ReLURule.self, x) }
