import Autograd

/// Sizes of a Llama/Qwen2-style decoder block.
public struct TransformerConfig: Sendable, Equatable {
    public var hiddenSize: Int
    public var numHeads: Int
    public var numKeyValueHeads: Int
    public var intermediateSize: Int
    public var rmsNormEps: Float = 1e-6
    public var ropeTheta: Float = 10_000
    /// Qwen2 puts biases on q/k/v; Llama does not.
    public var attentionBias: Bool = true

    public init(hiddenSize: Int, numHeads: Int, numKeyValueHeads: Int, intermediateSize: Int,
                rmsNormEps: Float = 1e-6, ropeTheta: Float = 10_000, attentionBias: Bool = true) {
        precondition(hiddenSize % numHeads == 0, "TransformerConfig: hidden size \(hiddenSize) not divisible by \(numHeads) heads")
        precondition(numHeads % numKeyValueHeads == 0, "TransformerConfig: \(numHeads) heads not a multiple of \(numKeyValueHeads) KV heads")
        (self.hiddenSize, self.numHeads, self.numKeyValueHeads, self.intermediateSize) = (hiddenSize, numHeads, numKeyValueHeads, intermediateSize)
        (self.rmsNormEps, self.ropeTheta, self.attentionBias) = (rmsNormEps, ropeTheta, attentionBias)
    }

    public var headDim: Int { hiddenSize / numHeads }
}

/// Multi-head self-attention with grouped-query heads and rotary positions (`self_attn.*`).
public final class SelfAttention: Module {
    public let qProj, kProj, vProj, oProj: Linear
    let config: TransformerConfig

    public init(_ config: TransformerConfig, rng: inout RNG) {
        let (c, hd) = (config.hiddenSize, config.headDim)
        qProj = Linear(c, config.numHeads * hd, bias: config.attentionBias, rng: &rng)
        kProj = Linear(c, config.numKeyValueHeads * hd, bias: config.attentionBias, rng: &rng)
        vProj = Linear(c, config.numKeyValueHeads * hd, bias: config.attentionBias, rng: &rng)
        oProj = Linear(config.numHeads * hd, c, bias: false, rng: &rng)
        self.config = config
    }

    /// x: [B, T, C] → [B, T, C]
    public func callAsFunction(_ x: Tensor, positions: [Int], mask: AttentionMask) -> Tensor {
        let (b, t, hd) = (x.shape[0], x.shape[1], config.headDim)
        let q = rope(qProj(x).reshaped([b, t, config.numHeads, hd]), positions: positions, base: config.ropeTheta)
        let k = rope(kProj(x).reshaped([b, t, config.numKeyValueHeads, hd]), positions: positions, base: config.ropeTheta)
        let v = vProj(x).reshaped([b, t, config.numKeyValueHeads, hd])
        let attended = scaledDotProductAttention(query: q, key: k, value: v, mask: mask)
        return oProj(attended.reshaped([b, t, config.numHeads * hd]))
    }
}

/// SwiGLU feed-forward: down(silu(gate(x)) ⊙ up(x)) (`mlp.*`).
public final class GatedMLP: Module {
    public let gateProj, upProj, downProj: Linear

    public init(_ config: TransformerConfig, rng: inout RNG) {
        gateProj = Linear(config.hiddenSize, config.intermediateSize, bias: false, rng: &rng)
        upProj = Linear(config.hiddenSize, config.intermediateSize, bias: false, rng: &rng)
        downProj = Linear(config.intermediateSize, config.hiddenSize, bias: false, rng: &rng)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { downProj(silu(gateProj(x)) * upProj(x)) }
}

/// A pre-norm decoder block: x + attn(norm(x)), then + mlp(norm(·)). Keys match Qwen2's
/// `model.layers.i.*` (`input_layernorm`, `self_attn`, `post_attention_layernorm`, `mlp`).
public final class TransformerBlock: Module {
    public let inputLayernorm: RMSNorm
    public let selfAttn: SelfAttention
    public let postAttentionLayernorm: RMSNorm
    public let mlp: GatedMLP

    public init(_ config: TransformerConfig, rng: inout RNG) {
        inputLayernorm = RMSNorm(config.hiddenSize, eps: config.rmsNormEps)
        selfAttn = SelfAttention(config, rng: &rng)
        postAttentionLayernorm = RMSNorm(config.hiddenSize, eps: config.rmsNormEps)
        mlp = GatedMLP(config, rng: &rng)
    }

    public func callAsFunction(_ x: Tensor, positions: [Int], mask: AttentionMask) -> Tensor {
        let h = x + selfAttn(inputLayernorm(x), positions: positions, mask: mask)
        return h + mlp(postAttentionLayernorm(h))
    }
}
