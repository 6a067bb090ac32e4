import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// Recipe of `pretrain-action` (stage 1, the paper's "Expert"): a trained stage-0 VLM, frozen, gets
/// an action LoRA and trainable query rows, and a new action expert learns to act from its latents.
public struct ActionPretrainingRecipe: RecipeSchema {
    public struct Model: Codable, Sendable, Equatable {
        /// Stage-0 run folder (`vlm` recipe): its resolved recipe, tokenizer and newest checkpoint.
        public var vlm = ""
        /// Latent action queries (≤ the tokenizer's reserved `<new_token_i>`).
        public var actionQueries = 8
        /// The expert's backbone (Llama-style, MHA, RoPE θ = 1000).
        public var hiddenSize = 64
        public var numLayers = 2
        public var numHeads = 4
        public var intermediateSize = 128
        /// The expert's own vision transformer (image size comes from the data).
        public var visionPatchSize = 8
        public var visionHiddenSize = 48
        public var visionLayers = 2
        public var visionHeads = 4
        public var visionIntermediateSize = 96
        /// Merge 2×2 neighbouring patches before the backbone (finer patches at the same token count).
        public var visionMergePatches = false
        /// First width of a convolutional stem (3×3 stride-2 convolutions, doubling) in place of the
        /// ViT's patchify layer; 0 for plain patches. Needs a power-of-two patch size.
        public var visionStemChannels = 0
        /// Keypoints of a spatial-softmax token (object coordinates read from the expert's vision
        /// features, Levine et al. 2016) in the expert's context; 0 for none.
        public var visionKeypoints = 0
        /// A spatial-readout token (the flattened patch grid through an MLP, as a CNN policy's
        /// flatten + linear) in the expert's context.
        public var visionSpatialReadout = false
        /// A proprio token (end-effector position and gripper) in the expert's input.
        public var useProprio = true
        /// Which dimensions of the dataset's proprio vector that token reads (empty: all of them).
        /// In scripted demonstrations the end effector's first millimetres of motion give away the
        /// action ("copycat" inputs), so a policy can fit the data from them without reading the image.
        public var proprioDims: [Int] = []
        /// Weight of an auxiliary loss: a linear head on the spatial-readout token regresses the
        /// data's `auxiliary_dims` (e.g. object and goal positions from the simulator), so the expert's
        /// vision is taught where things are, not only through the actions. 0: off. Training only.
        public var auxiliaryWeight = 0.0

        /// What the expert reads of a proprio batch [B, P]: nothing without `use_proprio`, else the
        /// `proprio_dims` columns.
        func expertProprio(_ proprio: Tensor?) -> Tensor? {
            guard useProprio, let proprio else { return nil }
            guard !proprioDims.isEmpty else { return proprio }
            let (b, p, values) = (proprio.shape[0], proprio.shape[1], proprio.toArray())
            return Tensor((0..<b).flatMap { i in proprioDims.map { values[i * p + $0] } }, shape: [b, proprioDims.count])
        }

        /// The width of the expert's proprio input for a dataset's `datasetDim` proprio values.
        func expertProprioDim(_ datasetDim: Int) throws -> Int {
            guard useProprio else { return 0 }
            guard proprioDims.allSatisfy({ $0 < datasetDim }) else {
                throw RecipeError("model.proprio_dims: \(proprioDims) indexes past the data's \(datasetDim) proprio values")
            }
            return proprioDims.isEmpty ? datasetDim : proprioDims.count
        }
    }
    public struct Motion: Codable, Sendable, Equatable {
        /// Fraction of samples whose answer starts with the language-motion phrase.
        public var fraction = 0.2
        public var window = 4
        public var positionThreshold = 0.01
        public var gripperThreshold = 0.05
    }

    public var task = "pretrain-action"
    public var model = Model()
    public var lora = LoRASection()
    public var motion = Motion()
    public var flow = FlowSection()
    public var data = EpisodeDataSection.cachingImageTokens
    public var train: TrainSection = {
        var train = TrainSection()
        train.trainable = ["action_model.*", "*.lora_A.action.*", "*.lora_B.action.*", "vlm.language_model.model.embed_tokens.weight"]
        train.weightDecay = 0
        train.schedule = "constant"
        return train
    }()

    public init() {}

    public func validate() throws {
        guard task == "pretrain-action" else { throw RecipeError("task: this recipe type is 'pretrain-action', got '\(task)'") }
        try train.validate()
        try data.validate()
        guard !model.vlm.isEmpty else { throw RecipeError("model.vlm: give the stage-0 run folder (e.g. Checkpoints/tiny/vlm)") }
        guard model.visionKeypoints >= 0 else { throw RecipeError("model.vision_keypoints: >= 0 (0: no spatial-softmax token)") }
        guard model.useProprio || model.proprioDims.isEmpty else { throw RecipeError("model.proprio_dims: needs use_proprio: true") }
        guard model.proprioDims.allSatisfy({ $0 >= 0 }), Set(model.proprioDims).count == model.proprioDims.count else {
            throw RecipeError("model.proprio_dims: \(model.proprioDims) must be distinct indices (0-based) into the data's proprio vector")
        }
        guard model.auxiliaryWeight >= 0 else { throw RecipeError("model.auxiliary_weight: 0 (off) or more, got \(model.auxiliaryWeight)") }
        if model.auxiliaryWeight > 0 {
            guard !data.auxiliaryDims.isEmpty, model.visionSpatialReadout else {
                throw RecipeError("model.auxiliary_weight: needs data.auxiliary_key and data.auxiliary_dims (the targets) and " +
                                  "model.vision_spatial_readout: true (the token its head reads)")
            }
        } else if !data.auxiliaryDims.isEmpty {
            throw RecipeError("data.auxiliary_dims: only an auxiliary loss reads them; set model.auxiliary_weight > 0 or remove them")
        }
        guard model.actionQueries >= 1 else { throw RecipeError("model.action_queries: at least 1") }
        guard model.hiddenSize % model.numHeads == 0, model.visionHiddenSize % model.visionHeads == 0 else {
            throw RecipeError("model: hidden_size must divide by num_heads, vision_hidden_size by vision_heads")
        }
        let patch = model.visionPatchSize
        guard model.visionStemChannels >= 0, model.visionStemChannels == 0 || (patch >= 2 && patch & (patch - 1) == 0) else {
            throw RecipeError("model.vision_stem_channels: \(model.visionStemChannels) needs a power-of-two vision_patch_size >= 2 " +
                              "(one stride-2 convolution per halving), got \(patch); use 0 for plain patches")
        }
        try lora.validate()
        guard (0...1).contains(motion.fraction), motion.window >= 1 else { throw RecipeError("motion: fraction in [0, 1], window >= 1") }
        try flow.validate()
    }

    var languageMotion: LanguageMotion {
        LanguageMotion(window: motion.window, positionThreshold: Float(motion.positionThreshold), gripperThreshold: Float(motion.gripperThreshold))
    }

    func expertConfig(imageSize: Int, latentSize: Int, proprioDim: Int, actionDim: Int) throws -> ActionExpertConfig {
        var backbone = TransformerConfig(hiddenSize: model.hiddenSize, numHeads: model.numHeads, numKeyValueHeads: model.numHeads,
                                         intermediateSize: model.intermediateSize, ropeTheta: 1000, attentionBias: false)
        backbone.rmsNormEps = 1e-6
        var vision = VisionConfig(imageSize: imageSize, patchSize: model.visionPatchSize, hiddenSize: model.visionHiddenSize,
                                  numLayers: model.visionLayers, numHeads: model.visionHeads, intermediateSize: model.visionIntermediateSize)
        vision.stemChannels = model.visionStemChannels
        var config = ActionExpertConfig(backbone: backbone, numLayers: model.numLayers, vision: vision, latentSize: latentSize,
                                        numQueries: model.actionQueries, proprioDim: try model.expertProprioDim(proprioDim),
                                        actionDim: actionDim, horizon: data.horizon)
        config.mergePatches = model.visionMergePatches
        config.keypoints = model.visionKeypoints
        config.spatialReadout = model.visionSpatialReadout
        config.cameras = data.imageKeys.count
        config.auxiliaryOutputs = model.auxiliaryWeight > 0 ? data.auxiliaryDims.count : 0
        return config
    }
}

/// Stage 1: flow matching through the frozen VLM's latent queries, plus the LM loss on the answer.
public final class ActionPretrainingTask: TrainingTask {
    public let recipe: ActionPretrainingRecipe
    public let vla: InstructVLA
    public let prompt: ActionPrompt
    public let loader: EpisodeLoader
    let motion: MotionPhrases
    let imageTokens: ImageTokenCache
    let conversations: ConversationCache
    public var model: Module { vla }

    public init(_ recipe: ActionPretrainingRecipe, run: RunDirectory, shard: DataShard = .whole) throws {
        self.recipe = recipe
        let stage0 = try TrainedVLM.load(runFolder: URL(fileURLWithPath: recipe.model.vlm))
        loader = try recipe.data.trainingLoader(run: run, batchSize: recipe.train.batchSize, seed: recipe.train.seed, shard: shard)
        let dataset = loader.dataset
        guard dataset.imageShape == [stage0.recipe.model.imageSize, stage0.recipe.model.imageSize, 3] else {
            throw RecipeError("data.files: frames are \(dataset.imageShape) but the stage-0 VLM (\(recipe.model.vlm)) reads " +
                              "\(stage0.recipe.model.imageSize)² images")
        }
        let grid = dataset.imageShape[0] / recipe.model.visionPatchSize
        guard dataset.imageShape[0] % recipe.model.visionPatchSize == 0, !recipe.model.visionMergePatches || grid % 2 == 0 else {
            throw RecipeError("model.vision_patch_size: \(recipe.model.visionPatchSize) must divide the \(dataset.imageShape[0]) px frames" +
                              (recipe.model.visionMergePatches ? " into an even grid (vision_merge_patches merges 2×2 patches)" : ""))
        }
        let expert = try recipe.expertConfig(imageSize: dataset.imageShape[0], latentSize: stage0.recipe.model.hiddenSize,
                                         proprioDim: dataset.proprioDim, actionDim: dataset.actionDim)
        prompt = try ActionPrompt(template: ChatTemplate(imageTokens: stage0.vlm.tokensPerImage), tokenizer: stage0.tokenizer,
                                  numQueries: recipe.model.actionQueries)
        vla = InstructVLA(vlm: stage0.vlm, expert: expert, lora: recipe.lora.settings, queryIds: prompt.queryIds, seed: UInt64(recipe.train.seed))
        vla.adapters.training = true
        imageTokens = ImageTokenCache(vlm: vla.vlm, dataset: dataset)
        conversations = ConversationCache(prompt: prompt)
        motion = try MotionPhrases(recipe.languageMotion, dataset: dataset)
        // The tokenizer and stage-0 recipe travel with the run, so it can be served and exported alone
        // (ActionPolicy reads them back).
        try stage0.tokenizer.write(to: run.url.appendingPathComponent("tokenizer.json"))
        let stage0Recipe = try Data(contentsOf: URL(fileURLWithPath: recipe.model.vlm).appendingPathComponent("recipe.yaml"))
        try writeAtomically(run.url.appendingPathComponent("vlm_recipe.yaml")) { try $0.write(stage0Recipe) }
        let firstFile = try HDF5File(path: dataset.episodes[0].file)
        let observation: [String: Any] = ["image_size": dataset.imageShape[0], "image_key": dataset.layout.imageKeys[0],
                                          "camera": try firstFile.stringAttribute("camera", of: "data") ?? "unknown",
                                          "extra_cameras": dataset.layout.imageKeys.dropFirst().map(ActionPolicy.cameraName)]
        let observationJSON = try JSONSerialization.data(withJSONObject: observation, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(run.url.appendingPathComponent("observation.json")) { try $0.write(observationJSON) }
    }

    func inputs(_ batch: EpisodeBatch, motionFraction: Double, rngs: inout [RNG]) -> ActionInputs {
        let b = batch.instructions.count
        let examples = (0..<b).map { i in
            let withMotion = Double(rngs[i].uniform()) < motionFraction
            let phrase = withMotion ? motion.phrase(episode: batch.frames[i].episode, step: batch.frames[i].step) : nil
            let made = conversations(prompt.conversation(instruction: batch.instructions[i], motion: phrase))
            return (ids: made.ids, targets: made.targets)
        }
        let length = examples.map(\.ids.count).max()!
        let padded = examples.map { ChatTemplate.padded($0, to: length, tokenizer: prompt.tokenizer) }
        return ActionInputs(ids: padded.flatMap(\.ids), targets: padded.flatMap(\.targets), length: length,
                            imageTokens: imageTokens.frames(of: batch), pixels: batch.images,
                            proprio: recipe.model.expertProprio(batch.proprio))
    }

    public func trainingLoss() throws -> MicroBatch {
        let batch = try loader.next()
        let started = Date()
        // A sample's prompt choice, flow time and noise follow from its place in the data stream, so a
        // data-parallel job draws exactly what one process would.
        var rngs = batch.positions.map { sampleRNG(seed: UInt64(recipe.train.seed) &+ 7, position: $0) }
        let inputs = inputs(batch, motionFraction: recipe.motion.fraction, rngs: &rngs)
        let dataSeconds = batch.waitSeconds + Date().timeIntervalSince(started)
        let loss = vla.loss(inputs, actions: batch.actions, sampleRNGs: rngs, flowSamples: recipe.flow.samples,
                            auxiliary: batch.auxiliary.map { ($0, Float(recipe.model.auxiliaryWeight)) })
        var metrics = ["flow_loss": Double(loss.flow.item()), "lm_loss": Double(loss.language.item())]
        if let auxiliary = loss.auxiliary { metrics["auxiliary_loss"] = Double(auxiliary.item()) }
        return MicroBatch(loss: loss.total, samples: inputs.batch, dataSeconds: dataSeconds, metrics: metrics)
    }

    public func validationLoss(batches: Int) throws -> Double? { nil }

    public func save(into state: inout TrainerState) {
        loader.save(into: &state)
        state.setRNG("lora_dropout", vla.adapters.rng)
    }

    public func restore(from state: TrainerState) throws {
        try loader.restore(from: state)
        vla.adapters.rng = try state.rng("lora_dropout")
    }
}
