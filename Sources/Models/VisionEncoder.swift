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
    /// 0: the ViT's plain patchify convolution. Otherwise the first width of a convolutional stem
    /// (`ConvStem`) that replaces it; the patch size must then be a power of two.
    public var stemChannels = 0

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
/// positions: `embeddings.patch_embedding`, `embeddings.position_embedding`. With a convolutional
/// stem, the stem does the stride-P downsampling and `patch_embedding` is a 1×1 convolution.
public final class VisionEmbeddings: Module {
    public let stem: ConvStem?
    public let patchEmbedding: Conv2d
    public let positionEmbedding: Embedding
    let config: VisionConfig

    init(_ config: VisionConfig, rng: inout RNG) {
        if config.stemChannels > 0 {
            let convStem = ConvStem(patchSize: config.patchSize, firstChannels: config.stemChannels, rng: &rng)
            patchEmbedding = Conv2d(convStem.outChannels, config.hiddenSize, kernel: 1, rng: &rng)
            stem = convStem
        } else {
            patchEmbedding = Conv2d(3, config.hiddenSize, kernel: config.patchSize, stride: config.patchSize, rng: &rng)
            stem = nil
        }
        positionEmbedding = Embedding(config.numPatches, config.hiddenSize, rng: &rng)
        self.config = config
    }

    /// pixels [B, H, W, 3] in [0, 1] → [B, N, D]
    func callAsFunction(_ pixels: Tensor) -> Tensor {
        let normalized = pixels * 2 - 1  // SigLIP's mean = std = 0.5
        let positions = positionEmbedding(Array(0..<Int32(config.numPatches)), shape: [1, config.numPatches])
        let grid = patchEmbedding(stem.map { $0(normalized) } ?? normalized)  // [B, H/P, W/P, D]
        return grid.reshaped([grid.shape[0], config.numPatches, config.hiddenSize]) + positions
    }
}

/// Early convolutions before the transformer (Xiao et al. 2021, "Early Convolutions Help
/// Transformers See Better"): log2(P) 3×3 stride-2 convolutions, channels doubling from
/// `firstChannels`, each followed by a per-pixel LayerNorm and ReLU. A from-scratch ViT on a few
/// hundred thousand frames learns to localise small objects far sooner with this locality prior.
public final class ConvStem: Module {
    public let convs: [Conv2d]
    public let norms: [LayerNorm]
    public let outChannels: Int

    init(patchSize: Int, firstChannels: Int, rng: inout RNG) {
        precondition(patchSize >= 2 && patchSize & (patchSize - 1) == 0, "ConvStem: patch size \(patchSize) is not a power of two")
        let stages = patchSize.trailingZeroBitCount
        let widths = (0..<stages).map { firstChannels << $0 }
        convs = widths.indices.map { i in Conv2d(i == 0 ? 3 : widths[i - 1], widths[i], kernel: 3, stride: 2, padding: 1, rng: &rng) }
        norms = widths.map { LayerNorm($0, eps: 1e-6) }
        outChannels = widths.last!
    }

    /// [B, H, W, 3] → [B, H/P, W/P, outChannels]
    func callAsFunction(_ x: Tensor) -> Tensor {
        zip(convs, norms).reduce(x) { h, layer in relu(layer.1(layer.0(h))) }
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
