/// y = x·Wᵀ + b with weight [out, in], as PyTorch's `nn.Linear` (keys `weight`, `bias`), plus the
/// low-rank adapters attached to it, if any (keys `lora_A.<name>.weight`, `lora_B.<name>.weight`, as PEFT).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public var adapters: LoRAAdapters?

    override public class var parameterKeys: [String: String] { ["adapters": ""] }

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RNG) {
        weight = .linearWeight(out: outFeatures, in: inFeatures, rng: &rng)
        let bound = 1 / Float(max(inFeatures, 1)).squareRoot()
        self.bias = bias ? .randomUniform([outFeatures], low: -bound, high: bound, rng: &rng, requiresGrad: true) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = linear(x, weight: weight, bias: bias)
        guard let delta = adapters?(x) else { return y }
        return y + delta
    }
}

/// A 2-D convolution on channels-last images, stored as PyTorch's `Conv2d` (`weight` [out, in, K, K],
/// `bias` [out]) with its default uniform(±1/√fan-in) initialisation.
public final class Conv2d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public let padding: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true, rng: inout RNG) {
        let bound = 1 / Float(inChannels * kernel * kernel).squareRoot()
        weight = .randomUniform([outChannels, inChannels, kernel, kernel], low: -bound, high: bound, rng: &rng, requiresGrad: true)
        self.bias = bias ? .randomUniform([outChannels], low: -bound, high: bound, rng: &rng, requiresGrad: true) : nil
        (self.stride, self.padding) = (stride, padding)
    }

    /// x [B, H, W, in] → [B, Ho, Wo, out]
    public func callAsFunction(_ x: Tensor) -> Tensor { conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding) }
}

/// A lookup table [vocab, dim] (key `weight`), initialised N(0, std²).
public final class Embedding: Module {
    public let weight: Tensor

    public init(_ vocabSize: Int, _ dim: Int, std: Float = 0.02, rng: inout RNG) {
        weight = .randomNormal([vocabSize, dim], std: std, rng: &rng, requiresGrad: true)
    }

    /// ids laid out as `shape` → [shape..., dim]
    public func callAsFunction(_ ids: [Int32], shape: [Int]) -> Tensor { embedding(ids, shape: shape, weight: weight) }
}

/// RMSNorm with a learned scale initialised to 1 (key `weight`), as Llama/Qwen2.
public final class RMSNorm: Module {
    public let weight: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-6) {
        weight = .ones([dim], requiresGrad: true)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { rmsNorm(x, weight: weight, eps: eps) }
}

/// LayerNorm with learned scale and shift (keys `weight`, `bias`).
public final class LayerNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = 1e-5) {
        weight = .ones([dim], requiresGrad: true)
        bias = .zeros([dim], requiresGrad: true)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}
