import Autograd

/// A small decoder-only language model: token embedding, pre-norm blocks, final norm, LM head.
/// Keys follow Qwen2 (`model.embed_tokens`, `model.layers.i`, `model.norm`, `lm_head`).
public final class CausalLM: Module {
    public final class Body: Module {
        public let embedTokens: Embedding
        public let layers: [TransformerBlock]
        public let norm: RMSNorm

        init(vocabSize: Int, numLayers: Int, _ config: TransformerConfig, rng: inout RNG) {
            embedTokens = Embedding(vocabSize, config.hiddenSize, rng: &rng)
            layers = (0..<numLayers).map { _ in TransformerBlock(config, rng: &rng) }
            norm = RMSNorm(config.hiddenSize, eps: config.rmsNormEps)
        }
    }

    public let model: Body
    public let lmHead: Linear
    public let config: TransformerConfig

    public init(vocabSize: Int, numLayers: Int, _ config: TransformerConfig, rng: inout RNG) {
        model = Body(vocabSize: vocabSize, numLayers: numLayers, config, rng: &rng)
        lmHead = Linear(config.hiddenSize, vocabSize, bias: false, rng: &rng)
        self.config = config
    }

    /// Final hidden states [B, T, C] for token ids [B, T] under a causal mask.
    public func hiddenStates(_ ids: [Int32], batch: Int, length: Int) -> Tensor {
        var h = model.embedTokens(ids, shape: [batch, length])
        let positions = Array(0..<length)
        for layer in model.layers { h = layer(h, positions: positions, mask: .causal) }
        return model.norm(h)
    }

    /// Logits [B, T, vocab].
    public func callAsFunction(_ ids: [Int32], batch: Int, length: Int) -> Tensor {
        lmHead(hiddenStates(ids, batch: batch, length: length))
    }
}
