import Foundation
import Autograd

/// A Qwen2-style decoder-only language model: token embedding, pre-norm blocks, final norm and an
/// LM head (or the embedding matrix itself when embeddings are tied). Keys follow Hugging Face:
/// `model.embed_tokens`, `model.layers.i`, `model.norm`, `lm_head` (absent when tied).
public final class CausalLM: Module {
    public final class Body: Module {
        public let embedTokens: Embedding
        public let layers: [TransformerBlock]
        public let norm: RMSNorm

        init(vocabSize: Int, numLayers: Int, _ config: TransformerConfig, rng: inout RNG) {
            embedTokens = Embedding(vocabSize, config.hiddenSize, std: config.embeddingInitStd, rng: &rng)
            layers = (0..<numLayers).map { _ in TransformerBlock(config, rng: &rng) }
            norm = RMSNorm(config.hiddenSize, eps: config.rmsNormEps)
        }
    }

    public let model: Body
    public let lmHead: Linear?
    public let config: TransformerConfig

    public init(vocabSize: Int, numLayers: Int, _ config: TransformerConfig, tieWordEmbeddings: Bool = false, rng: inout RNG) {
        model = Body(vocabSize: vocabSize, numLayers: numLayers, config, rng: &rng)
        lmHead = tieWordEmbeddings ? nil : Linear(config.hiddenSize, vocabSize, bias: false, rng: &rng)
        self.config = config
    }

    /// Token embeddings [B, T, C] of ids [B, T].
    public func embed(_ ids: [Int32], batch: Int, length: Int) -> Tensor { model.embedTokens(ids, shape: [batch, length]) }

    /// Final (post-norm) hidden states of input embeddings [B, T, C] under a causal mask. With a
    /// cache, the inputs continue the cached positions.
    public func hiddenStates(embeddings: Tensor, cache: KVCache? = nil) -> Tensor {
        let start = cache?.length ?? 0
        let positions = Array(start..<(start + embeddings.shape[1]))
        var h = embeddings
        for (i, layer) in model.layers.enumerated() { h = layer(h, positions: positions, mask: .causal, cache: cache, layer: i) }
        return model.norm(h)
    }

    public func hiddenStates(_ ids: [Int32], batch: Int, length: Int) -> Tensor {
        hiddenStates(embeddings: embed(ids, batch: batch, length: length))
    }

    /// Logits [..., vocab] of hidden states [..., C].
    public func logits(_ hidden: Tensor) -> Tensor {
        lmHead.map { $0(hidden) } ?? linear(hidden, weight: model.embedTokens.weight)
    }

    /// Logits [B, T, vocab].
    public func callAsFunction(_ ids: [Int32], batch: Int, length: Int) -> Tensor {
        logits(hiddenStates(ids, batch: batch, length: length))
    }

    /// Continues `prompt` (batch 1) with a KV cache: greedy when `temperature` is 0, else sampled
    /// from softmax(logits / temperature). Stops after `maxNewTokens` or at a token in `stop`
    /// (which is included). Returns the new tokens.
    public func generate(prompt: [Int32], maxNewTokens: Int, temperature: Float = 0, stop: Set<Int32> = [],
                         rng: inout RNG) -> [Int32] {
        precondition(!prompt.isEmpty, "generate: empty prompt")
        return generate(promptEmbeddings: withoutGrad { embed(prompt, batch: 1, length: prompt.count) },
                        maxNewTokens: maxNewTokens, temperature: temperature, stop: stop, rng: &rng)
    }

    /// As `generate(prompt:…)`, from prompt embeddings [1, T, C] (e.g. text with image tokens spliced in).
    public func generate(promptEmbeddings: Tensor, maxNewTokens: Int, temperature: Float = 0, stop: Set<Int32> = [],
                         rng: inout RNG) -> [Int32] {
        withoutGrad {
            let cache = KVCache(layers: model.layers.count)
            var input = promptEmbeddings, out: [Int32] = []
            while out.count < maxNewTokens {
                let t = input.shape[1]
                let h = hiddenStates(embeddings: input, cache: cache)
                let last = logits(h.slice(axis: 1, (t - 1)..<t)).toArray()
                let next = Int32(sampleToken(last, temperature: temperature, rng: &rng))
                out.append(next)
                if stop.contains(next) { break }
                input = embed([next], batch: 1, length: 1)
            }
            return out
        }
    }
}

/// argmax (temperature 0) or a draw from softmax(logits / temperature).
func sampleToken(_ logits: [Float], temperature: Float, rng: inout RNG) -> Int {
    if temperature <= 0 { return logits.indices.max { logits[$0] < logits[$1] }! }
    let m = logits.max()!
    let weights = logits.map { Double(Foundation.exp(($0 - m) / temperature)) }
    var u = Double(rng.uniform()) * weights.reduce(0, +)
    for (i, w) in weights.enumerated() { u -= w; if u <= 0 { return i } }
    return logits.count - 1
}
