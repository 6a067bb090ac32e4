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
    /// Standard deviation of the token embedding at initialisation.
    public var embeddingInitStd: Float = 0.02

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

    /// x: [B, T, C] → [B, T, C]. With a cache, the new keys/values are appended to those of earlier
    /// positions of `layer` and attention runs over all of them (incremental decoding).
    public func callAsFunction(_ x: Tensor, positions: [Int], mask: AttentionMask, cache: KVCache? = nil, layer: Int = 0) -> Tensor {
        let (b, t, hd) = (x.shape[0], x.shape[1], config.headDim)
        let q = rope(qProj(x).reshaped([b, t, config.numHeads, hd]), positions: positions, base: config.ropeTheta)
        var (k, v) = keysValues(x, positions: positions)
        if let cache { (k, v) = cache.append(layer: layer, keys: k, values: v) }
        let attended = scaledDotProductAttention(query: q, key: k, value: v, mask: mask)
        return oProj(attended.reshaped([b, t, config.numHeads * hd]))
    }

    /// Rotated keys and values [B, T, Hkv, D] of x [B, T, C].
    func keysValues(_ x: Tensor, positions: [Int]) -> (keys: Tensor, values: Tensor) {
        let (b, t, hd) = (x.shape[0], x.shape[1], config.headDim)
        let k = rope(kProj(x).reshaped([b, t, config.numKeyValueHeads, hd]), positions: positions, base: config.ropeTheta)
        return (k, vProj(x).reshaped([b, t, config.numKeyValueHeads, hd]))
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

    public func callAsFunction(_ x: Tensor, positions: [Int], mask: AttentionMask, cache: KVCache? = nil, layer: Int = 0) -> Tensor {
        let h = x + selfAttn(inputLayernorm(x), positions: positions, mask: mask, cache: cache, layer: layer)
        return h + mlp(postAttentionLayernorm(h))
    }

    /// Only what later positions read of x: its keys and values, appended to `cache` at `layer`.
    /// The last layer of a cached prefix needs nothing else.
    public func cacheKeysValues(_ x: Tensor, positions: [Int], cache: KVCache, layer: Int) {
        let (k, v) = selfAttn.keysValues(inputLayernorm(x), positions: positions)
        _ = cache.append(layer: layer, keys: k, values: v)
    }
}

/// Keys and values of the positions decoded so far, per layer: [B, S, Hkv, D] each.
public final class KVCache {
    private var keys: [Tensor?], values: [Tensor?]

    public init(layers: Int) {
        keys = Array(repeating: nil, count: layers)
        values = Array(repeating: nil, count: layers)
    }

    /// Positions cached so far.
    public var length: Int { keys.first??.shape[1] ?? 0 }
    /// Sequences cached (0 while empty).
    public var batch: Int { keys.first??.shape[0] ?? 0 }

    /// A new cache whose row j·B + i is row i of this one, for j < `times`: K continuations of one
    /// prefix in a batch. Differentiable, so the copies' gradients sum into the prefix's.
    public func repeatingBatch(_ times: Int) -> KVCache {
        let copy = KVCache(layers: keys.count)
        guard times > 1 else {
            (copy.keys, copy.values) = (keys, values)
            return copy
        }
        let b = batch
        let rows = (0..<(times * b)).map { $0 % b }
        let repeated = { (x: Tensor) in gatherRows(x.reshaped([b, -1]), rows).reshaped([times * b] + x.shape.dropFirst()) }
        copy.keys = keys.map { $0.map(repeated) }
        copy.values = values.map { $0.map(repeated) }
        return copy
    }

    /// Appends this step's keys/values for `layer` and returns all of them.
    func append(layer: Int, keys k: Tensor, values v: Tensor) -> (Tensor, Tensor) {
        let allK = keys[layer].map { concat([$0, k], axis: 1) } ?? k
        let allV = values[layer].map { concat([$0, v], axis: 1) } ?? v
        (keys[layer], values[layer]) = (allK, allV)
        return (allK, allV)
    }
}
