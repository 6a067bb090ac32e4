import Autograd

/// Sizes of a SigLIP-style vision transformer.
public struct VisionConfig: Sendable, Equatable {
    public var imageSize: Int
    public var patchSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var intermediateSize: Int
    public var layerNormEps: Float = 1e-6

    public init(imageSize: Int, patchSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int, intermediateSize: Int,
                layerNormEps: Float = 1e-6) {
        precondition(imageSize % patchSize == 0, "VisionConfig: image size \(imageSize) is not a multiple of patch size \(patchSize)")
        precondition(hiddenSize % numHeads == 0, "VisionConfig: hidden size \(hiddenSize) not divisible by \(numHeads) heads")
        (self.imageSize, self.patchSize, self.hiddenSize, self.numLayers) = (imageSize, patchSize, hiddenSize, numLayers)
        (self.numHeads, self.intermediateSize, self.layerNormEps) = (numHeads, intermediateSize, layerNormEps)
    }

    public var gridSize: Int { imageSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
}

/// Patch embedding (a stride-P convolution, weight [D, 3, P, P] as in Hugging Face) plus learned
/// positions: `embeddings.patch_embedding`, `embeddings.position_embedding`.
public final class VisionEmbeddings: Module {
    public let patchEmbedding: Linear2DPatch
    public let positionEmbedding: Embedding
    let config: VisionConfig

    init(_ config: VisionConfig, rng: inout RNG) {
        patchEmbedding = Linear2DPatch(channels: 3, patch: config.patchSize, out: config.hiddenSize, rng: &rng)
        positionEmbedding = Embedding(config.numPatches, config.hiddenSize, rng: &rng)
        self.config = config
    }

    /// pixels [B, H, W, 3] in [0, 1] → [B, N, D]
    func callAsFunction(_ pixels: Tensor) -> Tensor {
        let normalized = pixels * 2 - 1  // SigLIP's mean = std = 0.5
        let positions = positionEmbedding(Array(0..<Int32(config.numPatches)), shape: [1, config.numPatches])
        return patchEmbedding(normalized) + positions
    }
}

/// A stride-P, kernel-P convolution over HWC images, stored as Hugging Face stores the conv
/// (`weight` [out, C, P, P], `bias` [out]) and computed as one matmul over flattened patches.
public final class Linear2DPatch: Module {
    public let weight: Tensor
    public let bias: Tensor
    let patch: Int

    init(channels: Int, patch: Int, out: Int, rng: inout RNG) {
        let fanIn = channels * patch * patch
        let bound = 1 / Float(fanIn).squareRoot()
        weight = .randomUniform([out, channels, patch, patch], low: -bound, high: bound, rng: &rng, requiresGrad: true)
        bias = .randomUniform([out], low: -bound, high: bound, rng: &rng, requiresGrad: true)
        self.patch = patch
    }

    /// x [B, H, W, C] → [B, (H/P)·(W/P), out], patches in row-major grid order.
    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (gh, gw, p) = (h / patch, w / patch, patch)
        // [B, gh, P, gw, P, C] → [B, gh, gw, C, P, P]: each patch flattened in the conv weight's (c, y, x) order.
        let patches = x.reshaped([b, gh, p, gw, p, c]).permuted([0, 1, 3, 5, 2, 4]).reshaped([b, gh * gw, c * p * p])
        return linear(patches, weight: weight.reshaped([weight.shape[0], c * p * p]), bias: bias)
    }
}

/// Multi-head self-attention over all patches (`self_attn.{q,k,v,out}_proj`).
public final class VisionAttention: Module {
    public let qProj, kProj, vProj, outProj: Linear
    let heads: Int

    init(_ config: VisionConfig, rng: inout RNG) {
        let d = config.hiddenSize
        (qProj, kProj, vProj, outProj) = (Linear(d, d, rng: &rng), Linear(d, d, rng: &rng), Linear(d, d, rng: &rng), Linear(d, d, rng: &rng))
        heads = config.numHeads
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
        let split = { (t: Tensor) in t.reshaped([b, n, self.heads, d / self.heads]) }
        let o = scaledDotProductAttention(query: split(qProj(x)), key: split(kProj(x)), value: split(vProj(x)))
        return outProj(o.reshaped([b, n, d]))
    }
}

/// fc2(gelu_tanh(fc1(x))) (`mlp.fc1`, `mlp.fc2`).
public final class VisionMLP: Module {
    public let fc1, fc2: Linear
    init(_ config: VisionConfig, rng: inout RNG) {
        fc1 = Linear(config.hiddenSize, config.intermediateSize, rng: &rng)
        fc2 = Linear(config.intermediateSize, config.hiddenSize, rng: &rng)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { fc2(gelu(fc1(x), approximation: .tanh)) }
}

/// A pre-norm encoder layer: x + attn(LN(x)), then + mlp(LN(·)).
public final class VisionEncoderLayer: Module {
    public let layerNorm1: LayerNorm
    public let selfAttn: VisionAttention
    public let layerNorm2: LayerNorm
    public let mlp: VisionMLP

    init(_ config: VisionConfig, rng: inout RNG) {
        layerNorm1 = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
        selfAttn = VisionAttention(config, rng: &rng)
        layerNorm2 = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
        mlp = VisionMLP(config, rng: &rng)
    }

    /// With `film` (scale γ and shift β, [B, 1, D] each), the attention output is modulated before
    /// the MLP: h·(1+γ)+β (FiLM, as the action expert's vision encoder does).
    func callAsFunction(_ x: Tensor, film: (scale: Tensor, shift: Tensor)? = nil) -> Tensor {
        var h = x + selfAttn(layerNorm1(x))
        if let film { h = h * (film.scale + 1) + film.shift }
        return h + mlp(layerNorm2(h))
    }
}

/// A SigLIP-style vision transformer; keys as Hugging Face's `SiglipVisionTransformer`
/// (`embeddings.*`, `encoder.layers.i.*`, `post_layernorm`).
public final class VisionEncoder: Module {
    public final class Encoder: Module {
        public let layers: [VisionEncoderLayer]
        init(_ config: VisionConfig, rng: inout RNG) { layers = (0..<config.numLayers).map { _ in VisionEncoderLayer(config, rng: &rng) } }
    }

    public let embeddings: VisionEmbeddings
    public let encoder: Encoder
    public let postLayernorm: LayerNorm
    public let config: VisionConfig

    public init(_ config: VisionConfig, rng: inout RNG) {
        embeddings = VisionEmbeddings(config, rng: &rng)
        encoder = Encoder(config, rng: &rng)
        postLayernorm = LayerNorm(config.hiddenSize, eps: config.layerNormEps)
        self.config = config
    }

    /// pixels [B, H, W, 3] in [0, 1] → patch features [B, N, D]; `film` gives each layer's modulation.
    public func callAsFunction(_ pixels: Tensor, film: [(scale: Tensor, shift: Tensor)]? = nil) -> Tensor {
        precondition(pixels.rank == 4 && pixels.shape[1] == config.imageSize && pixels.shape[2] == config.imageSize && pixels.shape[3] == 3,
                     "VisionEncoder: expected images [B, \(config.imageSize), \(config.imageSize), 3], got \(pixels.shape)")
        precondition(film == nil || film!.count == encoder.layers.count, "VisionEncoder: FiLM for \(film!.count) of \(encoder.layers.count) layers")
        var h = embeddings(pixels)
        for (i, layer) in encoder.layers.enumerated() { h = layer(h, film: film?[i]) }
        return postLayernorm(h)
    }
}
