import Foundation
import Autograd

/// Sizes of the action expert (the paper's flow-matching "System 1", §1.3 of the method notes).
public struct ActionExpertConfig: Sendable, Equatable {
    /// Width, depth and heads of the Llama-style backbone.
    public var backbone: TransformerConfig
    public var numLayers: Int
    /// The expert's own vision transformer (FiLM-ed by the latents).
    public var vision: VisionConfig
    /// Width of the VLM's hidden states, and how many latent queries it provides.
    public var latentSize: Int
    public var numQueries: Int
    /// 0 for no proprio token.
    public var proprioDim: Int
    public var actionDim: Int
    /// Actions per chunk (H).
    public var horizon: Int
    /// Merge 2×2 neighbouring patches into one token (pixel shuffle) before the backbone: finer
    /// patches for small objects at the backbone's sequence length.
    public var mergePatches = false
    /// Keypoints of a spatial-softmax token read from the vision features (0: none).
    public var keypoints = 0
    /// A spatial-readout token: every patch feature, flattened in grid order, through an MLP.
    public var spatialReadout = false
    /// Camera views per observation, each through the one vision encoder (the first is the VLM's).
    public var cameras = 1
    /// Values a linear head regresses from the spatial-readout token for an auxiliary training loss
    /// (0: no head). Inference never runs it.
    public var auxiliaryOutputs = 0

    public init(backbone: TransformerConfig, numLayers: Int, vision: VisionConfig, latentSize: Int, numQueries: Int,
                proprioDim: Int, actionDim: Int, horizon: Int) {
        (self.backbone, self.numLayers, self.vision, self.latentSize) = (backbone, numLayers, vision, latentSize)
        (self.numQueries, self.proprioDim, self.actionDim, self.horizon) = (numQueries, proprioDim, actionDim, horizon)
    }
}

/// Linear → SiLU → Linear (`fc1`, `fc2`): how images, latents and proprio enter the expert's width.
public final class MLPProjector: Module {
    public let fc1, fc2: Linear
    public init(_ inFeatures: Int, _ width: Int, rng: inout RNG) {
        fc1 = Linear(inFeatures, width, rng: &rng)
        fc2 = Linear(width, width, rng: &rng)
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(silu(fc1(x))) }
}

/// FiLM of one vision layer: γ and β from the condition (`scale`, `shift`).
public final class FiLM: Module {
    public let scale, shift: Linear
    init(condition: Int, width: Int, rng: inout RNG) {
        scale = Linear(condition, width, rng: &rng)
        shift = Linear(condition, width, rng: &rng)
    }
    /// condition [B, C] → (γ, β) as [B, 1, width] each.
    func callAsFunction(_ condition: Tensor) -> (scale: Tensor, shift: Tensor) {
        let b = condition.shape[0]
        return (scale(condition).reshaped([b, 1, -1]), shift(condition).reshaped([b, 1, -1]))
    }
}

/// Spatial softmax (Levine et al. 2016, "End-to-end training of deep visuomotor policies"): each
/// of K keypoints is the softmax-weighted mean (x, y) of the patch grid under its own logit map
/// over the vision features; the 2K coordinates become one context token. It hands the backbone
/// object coordinates explicitly, which attention over a from-scratch ViT's patches did not learn
/// to do (the expert acted the same for every layout of a task).
public final class SpatialSoftmax: Module {
    public let keypoints: Linear
    public let projector: MLPProjector
    /// Patch centres [2, N] in [-1, 1], row-major: row 0 the x (column), row 1 the y (row) of patch n.
    /// Plain floats: a Tensor property would be taken for a parameter.
    let grid: [Float]

    init(features: Int, keypoints k: Int, gridSize g: Int, width: Int, rng: inout RNG) {
        keypoints = Linear(features, k, rng: &rng)
        projector = MLPProjector(2 * k, width, rng: &rng)
        let centre = { (i: Int) in g == 1 ? Float(0) : Float(2 * i) / Float(g - 1) - 1 }
        grid = (0..<(g * g)).map { centre($0 % g) } + (0..<(g * g)).map { centre($0 / g) }
    }

    /// Features [B, N, D] of an N = g² patch grid (row-major) → one token [B, 1, width].
    func callAsFunction(_ features: Tensor) -> Tensor {
        let b = features.shape[0]
        let weights = softmax(keypoints(features).transposed(1, 2), axis: -1)  // [B, K, N]: where each keypoint looks
        let coordinates = linear(weights, weight: Tensor(grid, shape: [2, grid.count / 2]))  // [B, K, 2]: expected (x, y)
        return projector(coordinates.reshaped([b, -1])).reshaped([b, 1, -1])
    }
}

/// Noisy actions and flow time → tokens: h = W3·silu(W2·[time_emb(t), W1·x_t]).
public final class ActionEncoder: Module {
    public let w1, w2, w3: Linear
    let width: Int

    init(actionDim: Int, width: Int, rng: inout RNG) {
        w1 = Linear(actionDim, width, rng: &rng)
        w2 = Linear(2 * width, width, rng: &rng)
        w3 = Linear(width, width, rng: &rng)
        self.width = width
    }

    /// x_t [B, H, A], t [B] → [B, H, width]
    func callAsFunction(_ noisyActions: Tensor, time: [Float]) -> Tensor {
        let (b, h) = (noisyActions.shape[0], noisyActions.shape[1])
        let embedded = Tensor(time.flatMap { t in Array(repeating: sinusoidalEmbedding(t, width: width), count: h).flatMap { $0 } },
                              shape: [b, h, width])
        return w3(silu(w2(concat([embedded, w1(noisyActions)], axis: 2))))
    }
}

/// [sin(t·f_i), cos(t·f_i)] with f_i = exp(−i·ln(100)/(half−1)): the reference's max period of 100.
func sinusoidalEmbedding(_ t: Float, width: Int) -> [Float] {
    let half = width / 2
    let frequencies = (0..<half).map { Foundation.exp(-Float($0) * Foundation.log(100) / Float(max(half - 1, 1))) }
    return frequencies.map { Foundation.sin(t * $0) } + frequencies.map { Foundation.cos(t * $0) } + (width % 2 == 1 ? [0] : [])
}

/// The action expert. It reads the tokens
///
///     [ vision patches (FiLM-ed by mean(latents)) | latents | proprio | H noisy actions ]
///
/// with a block-causal mask (patches see patches; latents and proprio see patches and themselves;
/// actions see everything), and predicts the flow-matching velocity of the action chunk from the
/// last H outputs, flattened, through an MLP.
public final class ActionExpert: Module {
    public let vision: VisionEncoder
    public let film: [FiLM]
    public let visionProjector: MLPProjector
    public let latentProjector: MLPProjector
    public let proprioProjector: MLPProjector?
    public let spatialSoftmax: SpatialSoftmax?
    /// The flattened patch grid [N·D] → one token: each grid position has its own weights, as in a
    /// CNN policy's flatten + linear, so where an object is reaches the actions without attention
    /// first having to learn to find it.
    public let spatialReadout: MLPProjector?
    /// Readout token → `auxiliaryOutputs` values (training-only supervision of what the vision finds).
    public let auxiliaryHead: Linear?
    public let actionEncoder: ActionEncoder
    public let layers: [TransformerBlock]
    public let norm: RMSNorm
    public let actionHead: [Linear]
    public let config: ActionExpertConfig

    public init(_ config: ActionExpertConfig, rng: inout RNG) {
        let d = config.backbone.hiddenSize
        vision = VisionEncoder(config.vision, rng: &rng)
        film = (0..<config.vision.numLayers).map { _ in FiLM(condition: config.latentSize, width: config.vision.hiddenSize, rng: &rng) }
        visionProjector = MLPProjector(config.vision.hiddenSize * (config.mergePatches ? 4 : 1), d, rng: &rng)
        latentProjector = MLPProjector(config.latentSize, d, rng: &rng)
        proprioProjector = config.proprioDim > 0 ? MLPProjector(config.proprioDim, d, rng: &rng) : nil
        spatialSoftmax = config.keypoints > 0
            ? SpatialSoftmax(features: config.vision.hiddenSize, keypoints: config.keypoints, gridSize: config.vision.gridSize, width: d, rng: &rng)
            : nil
        spatialReadout = config.spatialReadout
            ? MLPProjector(config.cameras * config.vision.numPatches * config.vision.hiddenSize, d, rng: &rng) : nil
        precondition(config.auxiliaryOutputs == 0 || config.spatialReadout, "ActionExpert: an auxiliary head reads the spatial-readout token")
        auxiliaryHead = config.auxiliaryOutputs > 0 ? Linear(d, config.auxiliaryOutputs, rng: &rng) : nil
        actionEncoder = ActionEncoder(actionDim: config.actionDim, width: d, rng: &rng)
        layers = (0..<config.numLayers).map { _ in TransformerBlock(config.backbone, rng: &rng) }
        norm = RMSNorm(d, eps: config.backbone.rmsNormEps)
        actionHead = [Linear(config.horizon * d, 2 * d, rng: &rng), Linear(2 * d, d, rng: &rng),
                      Linear(d, config.horizon * config.actionDim, rng: &rng)]
        self.config = config
    }

    /// Token group of each position, for the block-causal mask.
    var groups: [Int] {
        Array(repeating: 0, count: config.cameras * config.vision.numPatches / (config.mergePatches ? 4 : 1))
            + Array(repeating: 1, count: config.numQueries + (config.proprioDim > 0 ? 1 : 0) + (config.keypoints > 0 ? config.cameras : 0)
                                   + (config.spatialReadout ? 1 : 0))
            + Array(repeating: 2, count: config.horizon)
    }

    /// Velocity [B, H, A] of noisy actions x_t [B, H, A] at flow times t [B], given pixels [B, C, S, S, 3]
    /// in [0, 1] (C camera views; [B, S, S, 3] for one), the VLM's latents [B, N, latentSize] and
    /// (when configured) proprio [B, P].
    public func callAsFunction(pixels: Tensor, latents: Tensor, proprio: Tensor?, noisyActions: Tensor, time: [Float]) -> Tensor {
        velocity(prefix: prefix(context: context(pixels: pixels, latents: latents, proprio: proprio)), noisyActions: noisyActions, time: time)
    }

    /// The tokens before the actions, [B, C·patches + N (+ 1…), width].
    public func context(pixels: Tensor, latents: Tensor, proprio: Tensor?) -> Tensor {
        let (b, c, s) = (latents.shape[0], config.cameras, config.vision.imageSize)
        precondition(latents.shape == [b, config.numQueries, config.latentSize], "ActionExpert: latents \(latents.shape)")
        precondition(pixels.shape[0] == b && pixels.count == b * c * s * s * 3,
                     "ActionExpert: pixels \(pixels.shape) for \(b) observations of \(c) \(s)² camera views")
        let condition = mean(latents, axes: [1])
        // Every view of a sample is FiLM-ed by that sample's latents: frames [B·C, S, S, 3], sample-major.
        let perView = c == 1 ? condition : gatherRows(condition, (0..<b).flatMap { Array(repeating: $0, count: c) })
        let features = vision(pixels.reshaped([b * c, s, s, 3]), film: film.map { $0(perView) })
        // The views' patches side by side: the backbone's positions tell one view from the other.
        let patches = visionProjector(config.mergePatches ? pixelShuffle(features) : features).reshaped([b, -1, config.backbone.hiddenSize])
        var tokens = [patches, latentProjector(latents)]
        if let proprioProjector {
            guard let proprio else { preconditionFailure("ActionExpert: configured with proprio but none given") }
            tokens.append(proprioProjector(proprio).reshaped([b, 1, -1]))
        }
        if let spatialSoftmax { tokens.append(spatialSoftmax(features).reshaped([b, c, -1])) }  // one token per view
        if let spatialReadout { tokens.append(spatialReadout(features.reshaped([b, -1])).reshaped([b, 1, -1])) }
        return concat(tokens, axis: 1)
    }

    /// The auxiliary head's prediction [B, auxiliaryOutputs] from a `context`'s spatial-readout token (its last).
    public func auxiliaryPrediction(context: Tensor) -> Tensor {
        guard let auxiliaryHead else { preconditionFailure("ActionExpert: no auxiliary head (auxiliaryOutputs is 0)") }
        let (b, length) = (context.shape[0], context.shape[1])
        return auxiliaryHead(context.slice(axis: 1, (length - 1)..<length).reshaped([b, -1]))
    }

    /// The backbone's keys and values of the context, per layer. Under the block-causal mask the
    /// context never reads the actions, so this is computed once per observation and shared by all
    /// Euler steps at inference and all (time, noise) draws in training.
    public func prefix(context: Tensor) -> KVCache {
        let length = context.shape[1]
        precondition(length == groups.count - config.horizon, "ActionExpert: \(length) context tokens, expected \(groups.count - config.horizon)")
        let cache = KVCache(layers: layers.count)
        let (mask, positions) = (AttentionMask.blockCausal(groups: Array(groups.prefix(length))), Array(0..<length))
        var h = context
        for (i, layer) in layers.enumerated() {
            if i == layers.count - 1 {
                layer.cacheKeysValues(h, positions: positions, cache: cache, layer: i)
            } else {
                h = layer(h, positions: positions, mask: mask, cache: cache, layer: i)
            }
        }
        return cache
    }

    /// Velocity [B', H, A] of noisy actions [B', H, A]: the H action tokens attend to each other and
    /// to the cached context. B' may be K times the prefix's batch: row j·B + i continues context i.
    public func velocity(prefix: KVCache, noisyActions: Tensor, time: [Float]) -> Tensor {
        let b = noisyActions.shape[0]
        precondition(noisyActions.shape == [b, config.horizon, config.actionDim] && prefix.batch > 0 && b % prefix.batch == 0,
                     "ActionExpert: noisy actions \(noisyActions.shape) for a context of batch \(prefix.batch)")
        let cache = prefix.repeatingBatch(b / prefix.batch)
        let positions = Array(prefix.length..<(prefix.length + config.horizon))
        var h = actionEncoder(noisyActions, time: time)
        for (i, layer) in layers.enumerated() { h = layer(h, positions: positions, mask: .none, cache: cache, layer: i) }
        let d = config.backbone.hiddenSize
        let out = actionHead[2](silu(actionHead[1](silu(actionHead[0](norm(h).reshaped([b, config.horizon * d]))))))
        return out.reshaped([b, config.horizon, config.actionDim])
    }
}
