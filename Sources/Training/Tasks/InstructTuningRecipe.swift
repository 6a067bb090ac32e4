import Episodes
import Foundation
import Models

/// Recipe of `instruct-tune` (stage 2, the paper's "Generalist"): from a stage-1 run, a language
/// LoRA beside the action LoRA, mixed per token by a scale head, trained on robot episodes with
/// VLA-IT annotations and on interleaved multimodal VQA batches. The VLM base and the action expert
/// stay frozen.
public struct InstructTuningRecipe: RecipeSchema {
    public struct Model: Codable, Sendable, Equatable {
        /// Stage-1 run folder (`pretrain-action`): architecture, weights, tokenizer, norm stats.
        public var stage1 = ""
        /// The ablation: no language LoRA or router; the whole LM (and the action LoRA) fine-tunes
        /// on the same data, to measure the forgetting the mixture avoids.
        public var fullFinetune = false
        /// Train the vocabulary rows of tokens this run's text uses that the stage-0 VLM never read
        /// (capital letters, pieces of new words), beside the query rows: frozen at their random
        /// start, the LM can hardly learn to say them (see `UnseenTokens`). false: the query rows alone.
        public var trainUnseenTokens = true
    }
    /// The scale head (PEFT X-LoRA's classifier; the paper: depth 4, width 128, dropout 0.2).
    public struct Router: Codable, Sendable, Equatable {
        public var width = 32
        public var depth = 4
        public var dropout = 0.2
        /// Updates at the start during which every token gets λ = 1/2 and the head does not train (0:
        /// the paper's recipe). The language LoRA starts at B = 0, so a router trained from the first
        /// update learns to give the trained action LoRA everything, and the language LoRA, whose
        /// gradient scales with its λ, then hardly learns (at MT10 scale: λ 0.006 on response tokens).
        public var warmupSteps = 0
    }
    /// What each robot sample's text is (§2.2): fractions of plain commands, a caption/QA turn before
    /// the command, context creation and command rewriting (the last two answered, then acted on).
    public struct Mix: Codable, Sendable, Equatable {
        public var plain = 0.4
        public var dialogue = 0.2
        public var context = 0.2
        public var rewriting = 0.2
        /// Of the plain commands, the fraction answered with the language-motion phrase first.
        public var motion = 0.2
        /// Of the other plain commands, the fraction asked as context creation and rewriting are ("…
        /// First answer my question.") and answered with the episode's action sentence, then the
        /// queries. Thinking inference asks every command that way; without these samples a command
        /// that already names its object is answered as a rewriting, often of another object.
        public var restate = 0.0
    }
    /// Image/question/answer data trained with its own optimizer step after each robot update.
    public struct Multimodal: Codable, Sendable, Equatable {
        /// VQA files (globs allowed) in the layout of Datasets/vqa/*.py; [] for none.
        public var files: [String] = []
        public var split = "train"
        /// Examples per interleaved batch, per process as `train.batch_size` is (the paper's code: 2
        /// beside 12 robot samples, about 1:6).
        public var batchSize = 4
    }
    /// Thinking inference (§4): the response is generated until the first query token, then acted on.
    public struct Inference: Codable, Sendable, Equatable {
        /// Whether served/evaluated policies think first (they always can; this is the default).
        public var think = true
        /// In closed loop, regenerate the response every this many requests for the same
        /// instruction and reuse it in between (the paper: 20 steps).
        public var thinkEvery = 5
        public var maxResponseTokens = 40
    }

    public var task = "instruct-tune"
    public var model = Model()
    /// The language adapter (the paper: the same shape as the action LoRA, B = 0 at the start).
    public var lora = LoRASection()
    public var router = Router()
    public var mix = Mix()
    public var multimodal = Multimodal()
    public var inference = Inference()
    public var flow = FlowSection()
    /// `image_keys: []` (the default): the stage-1 run's camera views, which its frozen expert reads
    /// (filled in by `completing`).
    public var data: EpisodeDataSection = {
        var data = EpisodeDataSection.cachingImageTokens
        data.imageKeys = []
        return data
    }()
    public var train: TrainSection = {
        var train = TrainSection()
        train.trainable = ["*.lora_A.*", "*.lora_B.*", "scale_head.*", "vlm.language_model.model.embed_tokens.weight"]
        train.weightDecay = 0
        train.schedule = "constant"
        return train
    }()

    public init() {}

    public func validate() throws {
        guard task == "instruct-tune" else { throw RecipeError("task: this recipe type is 'instruct-tune', got '\(task)'") }
        try train.validate()
        try data.validate(viewsInherited: true)
        guard !model.stage1.isEmpty else { throw RecipeError("model.stage1: give the stage-1 run folder (e.g. Checkpoints/tiny/stage1)") }
        let parts = [mix.plain, mix.dialogue, mix.context, mix.rewriting]
        guard parts.allSatisfy({ $0 >= 0 }), abs(parts.reduce(0, +) - 1) < 1e-6, (0...1).contains(mix.motion), (0...1).contains(mix.restate) else {
            throw RecipeError("mix: plain, dialogue, context and rewriting must be >= 0 and sum to 1 (got \(parts.reduce(0, +))); motion and restate in [0, 1]")
        }
        try lora.validate()
        try flow.validate()
        guard router.width >= 1, router.depth >= 1, (0..<1).contains(router.dropout), router.warmupSteps >= 0 else {
            throw RecipeError("router: width >= 1, depth >= 1, dropout in [0, 1), warmup_steps >= 0")
        }
        guard multimodal.batchSize >= 0 else { throw RecipeError("multimodal.batch_size: >= 0 (0: no multimodal batches)") }
        guard inference.thinkEvery >= 1, inference.maxResponseTokens >= 1 else {
            throw RecipeError("inference: think_every and max_response_tokens must be >= 1")
        }
    }

    /// `data.image_keys: []` becomes the views of the stage-1 run at `model.stage1` where its recipe
    /// can be read; otherwise the tree stays as it is and the task reports the stage-1 run.
    public static func completing(_ resolved: RecipeValue) -> RecipeValue {
        guard case .list(let keys)? = resolved.value(at: ["data", "image_keys"]), keys.isEmpty,
              case .string(let folder)? = resolved.value(at: ["model", "stage1"]),
              let stage1 = try? RecipeValidator.read(URL(fileURLWithPath: folder).appendingPathComponent("recipe.yaml"),
                                                     as: ActionPretrainingRecipe.self, hint: "")
        else { return resolved }
        return resolved.setting(["data", "image_keys"], to: .list(stage1.data.imageKeys.map { .string($0) }))
    }

    /// Adds the language adapter and the scale head to a stage-1 model (not for the ablation).
    func addMixture(to vla: InstructVLA) {
        guard !model.fullFinetune else { return }
        vla.addLanguageAdapter(lora: lora.settings, headWidth: router.width, headDepth: router.depth, headDropout: Float(router.dropout),
                               seed: UInt64(train.seed) &+ 11)
    }
}
