import Foundation

// Pointwise activations: GELU (tanh approximation or exact erf), SiLU, ReLU. Each is a scalar value
// and derivative, inlined into one loop per direction (which LLVM vectorises).

protocol PointwiseRule {
    static func value(_ x: Float) -> Float
    /// dy/dx at x
    static func derivative(_ x: Float) -> Float
}

private func pointwise<R: PointwiseRule>(_: R.Type, _ x: Tensor) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    let n = x.count, px = x.pointer, po = out.pointer
    for i in 0..<n { po[i] = R.value(px[i]) }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        let gx = x.gradPointer(), pg = g.pointer
        for i in 0..<n { gx[i] += pg[i] * R.derivative(px[i]) }
    }
}

/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): PyTorch's `gelu(approximate="tanh")`, HF "gelu_pytorch_tanh".
enum GELUTanhRule: PointwiseRule {
    static let k: Float = 0.7978845608028654  // √(2/π)
    @inline(__always) static func value(_ x: Float) -> Float {
        0.5 * x * (1 + fastTanh(k * (x + 0.044715 * x * x * x)))
    }
    @inline(__always) static func derivative(_ x: Float) -> Float {
        let t = fastTanh(k * (x + 0.044715 * x * x * x))
        let du = k * (1 + 0.134145 * x * x)  // d/dx of √(2/π)(x + 0.044715x³)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
    }
}

/// x·Φ(x) with the exact normal CDF: PyTorch's default `gelu`.
enum GELUErfRule: PointwiseRule {
    @inline(__always) static func value(_ x: Float) -> Float { 0.5 * x * (1 + Foundation.erf(x * 0.7071067811865476)) }
    @inline(__always) static func derivative(_ x: Float) -> Float {
        // Φ(x) + x·φ(x)
        0.5 * (1 + Foundation.erf(x * 0.7071067811865476)) + x * fastExp(-0.5 * x * x) * 0.3989422804014327
    }
}

/// x·σ(x), a.k.a. swish.
enum SiLURule: PointwiseRule {
    @inline(__always) static func value(_ x: Float) -> Float { x * fastSigmoid(x) }
    @inline(__always) static func derivative(_ x: Float) -> Float {
        let s = fastSigmoid(x)
        return s * (1 + x * (1 - s))
    }
}

enum ReLURule: PointwiseRule {
    @inline(__always) static func value(_ x: Float) -> Float { x > 0 ? x : 0 }
    @inline(__always) static func derivative(_ x: Float) -> Float { x > 0 ? 1 : 0 }
}

public enum GELUApproximation: Sendable { case none, tanh }

public func gelu(_ x: Tensor, approximation: GELUApproximation = .none) -> Tensor {
    approximation == .tanh ? pointwise(GELUTanhRule.self, x) : pointwise(GELUErfRule.self, x)
}

public func silu(_ x: Tensor) -> Tensor { pointwise(SiLURule.self, x) }

public func relu(_ x: Tensor) -> Tensor { pointwise(ReLURule.self, x) }
