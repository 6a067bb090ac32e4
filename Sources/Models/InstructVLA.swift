import Autograd

/// LoRA settings of one adapter (the paper: r = 128, α = 2r, dropout 0.05 on q, k, v, o, up, down).
public struct LoRASettings: Sendable, Equatable {
    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    public init(rank: Int, alpha: Float, dropout: Float) { (self.rank, self.alpha, self.dropout) = (rank, alpha, dropout) }
}

/// One robot sample as the model consumes it.
public struct ActionInputs {
    /// Text ids [B, T] with image placeholders and the latent queries, and next-token targets (-100: none).
    public var ids: [Int32]
    public var targets: [Int32]
    public var length: Int
    /// The frozen VLM's image tokens [B, tokensPerImage, C] (cacheable: the vision tower and projector never train).
    public var imageTokens: Tensor
    /// Pixels [B, C, S, S, 3] in [0, 1] for the expert's own vision encoder: C camera views, the
    /// first the one the VLM read ([B, S, S, 3] for one view).
    public var pixels: Tensor
    /// Quantile-normalised proprio [B, P].
    public var proprio: Tensor?

    public init(ids: [Int32], targets: [Int32], length: Int, imageTokens: Tensor, pixels: Tensor, proprio: Tensor?) {
        (self.ids, self.targets, self.length, self.imageTokens, self.pixels, self.proprio) = (ids, targets, length, imageTokens, pixels, proprio)
    }

    public var batch: Int { pixels.shape[0] }

    /// The first camera view [B, S, S, 3] of pixels [B, C, S, S, 3]: the one the VLM reads.
    public static func vlmView(_ pixels: Tensor) -> Tensor {
        pixels.slice(axis: 1, 0..<1).reshaped([pixels.shape[0]] + Array(pixels.shape.suffix(3)))
    }
}

/// The stage-1 model of the paper's figure ("Expert"): the frozen VLM reads the image and the
/// instruction and answers with N latent action queries `<new_token_i>`; its final hidden states at
/// those positions condition the action expert, which turns noise into an action chunk by flow
/// matching. What trains: the action LoRA on the LM, the query tokens' embedding rows, the expert.
/// Keys: `vlm.*` (InternVL names, plus `lora_A.action` / `lora_B.action` on adapted layers) and
/// `action_model.*`.
public final class InstructVLA: Module {
    public let vlm: VisionLanguageModel
    public let actionModel: ActionExpert
    public let adapters: AdapterContext
    public let queryIds: [Int32]
    /// Stage 2's router over the language and action adapters (nil in stage 1).
    public private(set) var scaleHead: ScaleHead?
    /// The router's λ of the last forward, [B, T, adapters] row-major, for logging (plain floats: a
    /// Tensor property would be taken for a parameter).
    public private(set) var lastScales: [Float]?
    /// Every token gets λ = 1/adapters and the scale head is not run (stage 2's router warmup).
    public var uniformRouting = false

    /// Wraps a trained VLM: freezes it, attaches the action LoRA and makes the query rows trainable.
    public init(vlm: VisionLanguageModel, expert: ActionExpertConfig, lora: LoRASettings, queryIds: [Int32], seed: UInt64) {
        precondition(queryIds.count == expert.numQueries, "InstructVLA: \(queryIds.count) query tokens for an expert expecting \(expert.numQueries)")
        var rng = RNG(seed: seed)
        self.vlm = vlm
        self.actionModel = ActionExpert(expert, rng: &rng)
        self.adapters = AdapterContext(seed: seed &+ 1)
        self.queryIds = queryIds
        super.init()
        vlm.freeze()
        for linear in adaptedLayers {
            let adapters = linear.adapters ?? LoRAAdapters(context: self.adapters)
            adapters.add("action", inFeatures: linear.weight.shape[1], outFeatures: linear.weight.shape[0], rank: lora.rank,
                         alpha: lora.alpha, dropout: lora.dropout, rng: &rng)
            linear.adapters = adapters
        }
        // Only the query rows of the vocabulary train (in the embedding, and so in a tied LM head).
        trainVocabularyRows(queryIds)
    }

    /// Makes the rows of `ids` train (in the embedding and an untied LM head), beside those that
    /// already do; the other rows stay frozen.
    public func trainVocabularyRows(_ ids: [Int32]) {
        let lm = vlm.languageModel
        for weight in [lm.model.embedTokens.weight] + (lm.lmHead.map { [$0.weight] } ?? []) {
            if weight.requiresGrad && weight.trainableRows == nil { continue }  // every row trains already
            var rows = weight.trainableRows ?? [Bool](repeating: false, count: weight.shape[0])
            for id in ids { rows[Int(id)] = true }
            weight.trainableRows = rows
            weight.requiresGrad = true
        }
    }

    /// The LM layers that carry adapters, as the paper: q, k, v, o, up and down (not gate) of every block.
    var adaptedLayers: [Linear] {
        vlm.languageModel.model.layers.flatMap { [$0.selfAttn.qProj, $0.selfAttn.kProj, $0.selfAttn.vProj, $0.selfAttn.oProj, $0.mlp.upProj, $0.mlp.downProj] }
    }

    /// Stage 2: adds a language LoRA (B = 0, so the model is unchanged until it trains) beside the
    /// action LoRA on every adapted layer, and the scale head that mixes them per token.
    public func addLanguageAdapter(lora: LoRASettings, headWidth: Int, headDepth: Int, headDropout: Float, seed: UInt64) {
        precondition(scaleHead == nil, "InstructVLA: the language adapter is already there")
        var rng = RNG(seed: seed)
        for linear in adaptedLayers {
            linear.adapters!.add("language", inFeatures: linear.weight.shape[1], outFeatures: linear.weight.shape[0], rank: lora.rank,
                                 alpha: lora.alpha, dropout: lora.dropout, rng: &rng)
        }
        scaleHead = ScaleHead(inFeatures: vlm.languageModel.config.hiddenSize, width: headWidth, depth: headDepth,
                              adapterNames: ["language", "action"], dropout: headDropout, rng: &rng)
    }

    /// Final LM hidden states [B, T, C] of ids [B, T] with the image tokens [B, n, C] spliced in. With
    /// a scale head, a no-grad pass of the base LM (adapters off) first sets the per-token adapter
    /// gates; `lastScales` keeps them for routing statistics.
    public func hiddenStates(ids: [Int32], batch b: Int, length t: Int, imageTokens: Tensor) -> Tensor {
        let embeddings = embeddings(ids: ids, batch: b, length: t, imageTokens: imageTokens)
        return routed(embeddings: embeddings) { vlm.languageModel.hiddenStates(embeddings: embeddings, cache: $0) }
    }

    /// Token embeddings [B, T, C] of ids [B, T] with each sample's image placeholders replaced by
    /// its (cached, frozen) image tokens [B, n, C].
    func embeddings(ids: [Int32], batch b: Int, length t: Int, imageTokens: Tensor) -> Tensor {
        let text = vlm.languageModel.embed(ids, batch: b, length: t)
        let c = text.shape[2]
        let positions = ids.indices.filter { ids[$0] == vlm.imageTokenId }
        precondition(positions.count == b * vlm.tokensPerImage, "InstructVLA: \(positions.count) image placeholders for \(b) samples")
        return replacingRows(text.reshaped([b * t, c]), at: positions, with: imageTokens.reshaped([-1, c])).reshaped([b, t, c])
    }

    /// Runs `adapted` (the LM over `embeddings` with adapters on) with the gates the scale head reads
    /// from the base LM's pass over the same embeddings; caches continue earlier positions.
    func routed(embeddings: Tensor, base baseCache: KVCache? = nil, adaptedCache: KVCache? = nil,
                _ adapted: (KVCache?) -> Tensor) -> Tensor {
        guard let scaleHead, adapters.enabled else { return adapted(adaptedCache) }
        let scales: Tensor
        if uniformRouting {
            precondition(baseCache == nil, "InstructVLA: uniform routing is for training, not cached generation")
            let (b, t, n) = (embeddings.shape[0], embeddings.shape[1], scaleHead.adapterNames.count)
            scales = Tensor.full([b, t, n], 1 / Float(n))
        } else {
            adapters.enabled = false
            let base = withoutGrad { vlm.languageModel.hiddenStates(embeddings: embeddings, cache: baseCache) }
            adapters.enabled = true
            scales = scaleHead(base, training: adapters.training, rng: &adapters.rng)
        }
        lastScales = scales.toArray()
        scaleHead.route(scales, into: adapters)
        defer { adapters.gates = [:] }
        return adapted(adaptedCache)
    }

    func hiddenStates(_ inputs: ActionInputs) -> Tensor {
        hiddenStates(ids: inputs.ids, batch: inputs.batch, length: inputs.length, imageTokens: inputs.imageTokens)
    }

    /// The latents [B, N, C]: hidden states at the query tokens, in order.
    func latents(_ hidden: Tensor, _ inputs: ActionInputs) -> Tensor {
        let (b, t, c) = (hidden.shape[0], hidden.shape[1], hidden.shape[2])
        // Slices keep their parent's indices, so firstIndex is already a row of the [B·T, C] view.
        let positions = (0..<b).flatMap { i in queryIds.map { q in inputs.ids[(i * t)..<((i + 1) * t)].firstIndex(of: q)! } }
        return gatherRows(hidden.reshaped([b * t, c]), positions).reshaped([b, queryIds.count, c])
    }

    /// Cross-entropy over the supervised (answer) tokens only: logits at those positions alone.
    func languageLoss(_ hidden: Tensor, targets: [Int32]) -> Tensor {
        let c = hidden.shape[2]
        let positions = targets.indices.filter { targets[$0] != -100 }
        let logits = vlm.languageModel.logits(gatherRows(hidden.reshaped([-1, c]), positions))
        return crossEntropy(logits: logits, targets: positions.map { targets[$0] })
    }

    /// The LM loss alone, on image + text data (stage 2's interleaved multimodal batches).
    public func textLoss(ids: [Int32], targets: [Int32], batch: Int, length: Int, imageTokens: Tensor) -> Tensor {
        languageLoss(hiddenStates(ids: ids, batch: batch, length: length, imageTokens: imageTokens), targets: targets)
    }

    /// Stage-1 loss: flow matching on the normalised chunk `actions` [B, H, A] plus the LM loss, 1:1.
    public func loss(_ inputs: ActionInputs, actions: Tensor, rng: inout RNG, flowSamples: Int = 1)
        -> (total: Tensor, flow: Tensor, language: Tensor, auxiliary: Tensor?) {
        loss(inputs, actions: actions, sampleRNGs: (0..<actions.shape[0]).map { _ in rng.split() }, flowSamples: flowSamples)
    }

    /// The loss with sample i's flow-matching time and noise drawn from `sampleRNGs[i]`, so that a
    /// sample's draws do not depend on which batch (or data-parallel rank) it lands in. With
    /// `flowSamples` K > 1, each sample's context (LM latents, expert vision, the backbone's keys
    /// and values of the context) is computed once and the velocity is fitted at K (time, noise)
    /// draws: more flow-matching signal per image for the cost of K × H action tokens.
    /// `auxiliary` adds weight × MSE of the expert's auxiliary head against targets [B, K].
    public func loss(_ inputs: ActionInputs, actions: Tensor, sampleRNGs: [RNG], flowSamples k: Int = 1,
                     auxiliary: (targets: Tensor, weight: Float)? = nil)
        -> (total: Tensor, flow: Tensor, language: Tensor, auxiliary: Tensor?) {
        precondition(sampleRNGs.count == actions.shape[0], "InstructVLA.loss: \(sampleRNGs.count) generators for \(actions.shape[0]) samples")
        precondition(k >= 1, "InstructVLA.loss: flowSamples \(k) < 1")
        let hidden = hiddenStates(inputs)
        let language = languageLoss(hidden, targets: inputs.targets)
        let latents = latents(hidden, inputs)
        let (b, n) = (actions.shape[0], actions.count / actions.shape[0])
        let clean = actions.toArray()
        // Row r = j·B + i is draw j of sample i; each sample's draws continue its own generator.
        var noisy = [Float](repeating: 0, count: k * b * n), target = noisy, times = [Float](repeating: 0, count: k * b)
        for i in 0..<b {
            var rng = sampleRNGs[i]
            for j in 0..<k {
                let t = FlowMatching.sampleTime(rng: &rng)
                let noise = (0..<n).map { _ in rng.normal() }
                let (x, u) = FlowMatching.interpolate(actions: clean[(i * n)..<((i + 1) * n)], noise: noise[...], t: t)
                let row = j * b + i
                noisy.replaceSubrange((row * n)..<((row + 1) * n), with: x)
                target.replaceSubrange((row * n)..<((row + 1) * n), with: u)
                times[row] = t
            }
        }
        let context = actionModel.context(pixels: inputs.pixels, latents: latents, proprio: inputs.proprio)
        let prefix = actionModel.prefix(context: context)
        let shape = [k * b] + actions.shape.dropFirst()
        let velocity = actionModel.velocity(prefix: prefix, noisyActions: Tensor(noisy, shape: shape), time: times)
        let flow = mseLoss(velocity, Tensor(target, shape: shape))
        guard let auxiliary else { return (flow + language, flow, language, nil) }
        let auxiliaryLoss = mseLoss(actionModel.auxiliaryPrediction(context: context), auxiliary.targets)
        return (flow + language + auxiliary.weight * auxiliaryLoss, flow, language, auxiliaryLoss)
    }

    /// A normalised action chunk [B, H, A] by 10 Euler steps from `noise`, clipped to [-1, 1].
    public func predictActions(_ inputs: ActionInputs, noise: Tensor, steps: Int = 10) -> Tensor {
        withoutGrad {
            let prefix = actionModel.prefix(context: expertContext(inputs))
            let x = FlowMatching.sample(noise: noise, steps: steps) { x, t in actionModel.velocity(prefix: prefix, noisyActions: x, time: t) }
            return Tensor(x.toArray().map { min(max($0, -1), 1) }, shape: x.shape)
        }
    }

    /// The auxiliary head's standardised prediction [B, K] for an observation (no actions needed):
    /// what the expert's vision says of the privileged state it was supervised with.
    public func predictAuxiliary(_ inputs: ActionInputs) -> Tensor {
        withoutGrad { actionModel.auxiliaryPrediction(context: expertContext(inputs)) }
    }

    /// The action expert's context tokens for `inputs`: its vision and proprio, with the LM's latents.
    func expertContext(_ inputs: ActionInputs) -> Tensor {
        actionModel.context(pixels: inputs.pixels, latents: latents(hiddenStates(inputs), inputs), proprio: inputs.proprio)
    }

    /// Greedy continuation of `prompt` (batch 1, its image placeholders filled from `imageTokens`)
    /// through the adapted LM with KV caches, routed per token exactly as in training: the new tokens
    /// first go through the base LM (its own cache) to set their gates. Stops after `maxNewTokens` or
    /// at a token in `stop` (included). Returns the new tokens.
    public func generate(prompt: [Int32], imageTokens: Tensor, maxNewTokens: Int, stop: Set<Int32>) -> [Int32] {
        withoutGrad {
            let lm = vlm.languageModel
            let (base, adapted) = (KVCache(layers: lm.model.layers.count), KVCache(layers: lm.model.layers.count))
            var input = embeddings(ids: prompt, batch: 1, length: prompt.count, imageTokens: imageTokens)
            var out: [Int32] = []
            while out.count < maxNewTokens {
                let t = input.shape[1]
                let embeddings = input
                let h = routed(embeddings: embeddings, base: base, adaptedCache: adapted) { lm.hiddenStates(embeddings: embeddings, cache: $0) }
                let logits = lm.logits(h.slice(axis: 1, (t - 1)..<t)).toArray()
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                out.append(next)
                if stop.contains(next) { break }
                input = lm.embed([next], batch: 1, length: 1)
            }
            return out
        }
    }
}
