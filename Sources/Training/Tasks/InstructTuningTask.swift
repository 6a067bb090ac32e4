import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// Stage 2: the stage-1 model with a language LoRA and a scale head, trained on robot samples whose
/// text follows the instruct mix (flow matching + LM loss) and, after each update, on a multimodal
/// VQA batch with its own optimizer step (LM loss). The VLM base and the action expert stay frozen;
/// the flow-matching loss still reaches the LoRAs, the router and the query rows through the expert.
/// As one rank of a data-parallel job it trains on its shard of both streams (see `DataShard`).
public final class InstructTuningTask: TrainingTask {
    /// Files a stage-2 run folder carries so it can be served and exported on its own.
    static let inheritedFiles = ["tokenizer.json", "vlm_recipe.yaml", "observation.json"]

    public let recipe: InstructTuningRecipe
    /// The stage-1 model this run starts from (its weights are the starting point).
    public let stage1: ActionPolicy
    public var vla: InstructVLA { stage1.vla }
    public var model: Module { vla }
    public let loader: EpisodeLoader
    let annotations: [[Annotation]]
    /// Data files none of whose episodes carries a VLA-IT annotation: their samples can only be drawn
    /// as plain commands, so thinking about their tasks is never trained (the trainer warns).
    public let unannotatedFiles: [String]
    /// Tokens of this run's text that the stage-0 VLM never read, whose vocabulary rows train beside
    /// the queries' (`model.train_unseen_tokens`; see `UnseenTokens`).
    public let unseenTokens: [Int32]
    let motion: MotionPhrases
    let mix: InstructMix
    let imageTokens: ImageTokenCache
    let conversations: ConversationCache
    let multimodal: VQADataset?
    var multimodalSampler: EpisodeSampler
    let shard: DataShard

    public init(_ recipe: InstructTuningRecipe, run: RunDirectory, shard: DataShard = .whole) throws {
        (self.recipe, self.shard) = (recipe, shard)
        let stage1Folder = URL(fileURLWithPath: recipe.model.stage1)
        stage1 = try ActionPolicy(contentsOf: stage1Folder)
        guard stage1.instruct == nil else {
            throw RecipeError("model.stage1: \(recipe.model.stage1) is already a stage-2 run; give the stage-1 (pretrain-action) run folder")
        }
        let vla = stage1.vla
        recipe.addMixture(to: vla)
        if recipe.model.fullFinetune {
            // The ablation trains every row of the vocabulary, as a plain fine-tune would.
            let lm = vla.vlm.languageModel
            for weight in [lm.model.embedTokens.weight] + (lm.lmHead.map { [$0.weight] } ?? []) { weight.trainableRows = nil }
        }
        vla.adapters.training = true

        guard recipe.data.imageKeys == stage1.recipe.data.imageKeys else {
            throw RecipeError("data.image_keys: \(recipe.data.imageKeys) but the stage-1 model (\(recipe.model.stage1)) was trained on " +
                              "the camera views \(stage1.recipe.data.imageKeys); leave the key out to read those")
        }
        loader = try recipe.data.trainingLoader(run: run, batchSize: recipe.train.batchSize, seed: recipe.train.seed, inherited: stage1.stats,
                                                shard: shard)
        let dataset = loader.dataset
        guard dataset.imageShape == [stage1.imageSize, stage1.imageSize, 3] else {
            throw RecipeError("data.files: frames are \(dataset.imageShape) but the stage-1 model (\(recipe.model.stage1)) reads " +
                              "\(stage1.imageSize)² images")
        }
        annotations = try dataset.episodes.indices.map { try dataset.annotations(episode: $0) }
        let annotatedFiles = Set(zip(dataset.episodes, annotations).filter { !$0.1.isEmpty }.map(\.0.file))
        if recipe.mix.plain < 1 && annotatedFiles.isEmpty {
            throw RecipeError("data.files: no episode has VLA-IT annotations (add them with Datasets/metaworld/annotate.py), " +
                              "but mix asks for \(Int((1 - recipe.mix.plain) * 100))% annotated samples; set mix.plain: 1 to train on commands only")
        }
        var listed = Set<String>()
        unannotatedFiles = recipe.mix.plain < 1
            ? dataset.episodes.map(\.file).filter { !annotatedFiles.contains($0) && listed.insert($0).inserted } : []
        let motion = try MotionPhrases(stage1.recipe.languageMotion, dataset: dataset)
        let mix = InstructMix(mix: recipe.mix, prompt: stage1.prompt)
        let conversations = ConversationCache(prompt: stage1.prompt)
        (self.motion, self.mix, self.conversations) = (motion, mix, conversations)
        if recipe.model.trainUnseenTokens && !recipe.model.fullFinetune {
            let corpus = try UnseenTokens.corpus(of: stage1.vlmRecipe, source: stage1Folder.appendingPathComponent("vlm_recipe.yaml").path,
                                                 tokenizer: stage1.prompt.tokenizer, template: stage1.prompt.template)
            var texts = Set<Conversation>()
            for (e, episode) in dataset.episodes.enumerated() {
                texts.formUnion(mix.possibleConversations(instruction: episode.instruction, annotations: annotations[e],
                                                          motions: recipe.mix.motion > 0 ? motion.phrases(episode: e) : []))
            }
            let queries = Set(stage1.prompt.queryIds)
            unseenTokens = UnseenTokens.ids(of: texts.lazy.map { conversations($0).ids }, outside: corpus).filter { !queries.contains($0) }
            vla.trainVocabularyRows(unseenTokens)
        } else {
            unseenTokens = []
        }
        imageTokens = ImageTokenCache(vlm: vla.vlm, dataset: dataset)

        if recipe.multimodal.batchSize > 0 && !recipe.multimodal.files.isEmpty {
            let vqa = try VQADataset(files: EpisodeDataSection.expand(recipe.multimodal.files, key: "multimodal.files"), split: recipe.multimodal.split)
            guard vqa.imageShape == [stage1.imageSize, stage1.imageSize, 3] else {
                throw RecipeError("multimodal.files: images are \(vqa.imageShape) but the VLM reads \(stage1.imageSize)² images")
            }
            multimodal = vqa
        } else {
            multimodal = nil
        }
        multimodalSampler = EpisodeSampler(lengths: [multimodal?.examples.count ?? 1], seed: UInt64(recipe.train.seed) &+ 13)

        for name in Self.inheritedFiles {
            let data = try Data(contentsOf: stage1Folder.appendingPathComponent(name))
            try writeAtomically(run.url.appendingPathComponent(name)) { try $0.write(data) }
        }
        let stage1Recipe = try Data(contentsOf: stage1Folder.appendingPathComponent("recipe.yaml"))
        try writeAtomically(run.url.appendingPathComponent(ActionPolicy.stage1RecipeFile)) { try $0.write(stage1Recipe) }
    }

    /// The robot batch's model inputs, with each sample's token roles and text kind; sample i draws
    /// its text from `rngs[i]`.
    func inputs(_ batch: EpisodeBatch, rngs: inout [RNG]) -> (inputs: ActionInputs, roles: [TokenRole], kinds: [InstructMix.Kind]) {
        let b = batch.instructions.count
        var examples: [(ids: [Int32], targets: [Int32], roles: [TokenRole])] = [], kinds: [InstructMix.Kind] = []
        for i in 0..<b {
            let (episode, step) = batch.frames[i]
            let (conversation, kind) = mix.conversation(instruction: batch.instructions[i], annotations: annotations[episode],
                                                        motion: { motion.phrase(episode: episode, step: step) }, rng: &rngs[i])
            examples.append(conversations(conversation))
            kinds.append(kind)
        }
        let length = examples.map(\.ids.count).max()!
        let tokenizer = stage1.prompt.tokenizer
        let padded = examples.map { ChatTemplate.padded(($0.ids, $0.targets), to: length, tokenizer: tokenizer) }
        let roles = examples.flatMap { $0.roles + Array(repeating: TokenRole.template, count: length - $0.roles.count) }
        let inputs = ActionInputs(ids: padded.flatMap(\.ids), targets: padded.flatMap(\.targets), length: length,
                                  imageTokens: imageTokens.frames(of: batch), pixels: batch.images,
                                  proprio: stage1.recipe.model.expertProprio(batch.proprio))
        return (inputs, roles, kinds)
    }

    /// The router warmup: uniform λ for the first `router.warmup_steps` updates.
    public func willTrain(step: Int) { vla.uniformRouting = step < recipe.router.warmupSteps }

    public func trainingLoss() throws -> MicroBatch {
        let batch = try loader.next()
        let started = Date()
        // A sample's text, flow time and noise follow from its place in the data stream, so a
        // data-parallel job draws exactly what one process would.
        var rngs = batch.positions.map { sampleRNG(seed: UInt64(recipe.train.seed) &+ 17, position: $0) }
        let (inputs, roles, kinds) = inputs(batch, rngs: &rngs)
        let dataSeconds = batch.waitSeconds + Date().timeIntervalSince(started)
        let loss = vla.loss(inputs, actions: batch.actions, sampleRNGs: rngs, flowSamples: recipe.flow.samples)
        var metrics = ["flow_loss": Double(loss.flow.item()), "lm_loss": Double(loss.language.item())]
        if let scales = vla.lastScales, let head = vla.scaleHead {
            metrics.merge(Self.routing(scales, roles: roles, adapters: head.adapterNames)) { $1 }
        }
        for kind in InstructMix.Kind.allCases { metrics["mix/\(kind.rawValue)"] = Double(kinds.filter { $0 == kind }.count) / Double(kinds.count) }
        return MicroBatch(loss: loss.total, samples: inputs.batch, dataSeconds: dataSeconds, metrics: metrics)
    }

    /// Mean λ of each adapter over the tokens of each role: "router/<role>/<adapter>".
    static func routing(_ values: [Float], roles: [TokenRole], adapters: [String]) -> [String: Double] {
        let n = adapters.count
        precondition(values.count == roles.count * n, "routing: \(values.count / n) tokens but \(roles.count) roles")
        var sums = [TokenRole: [Double]](), counts = [TokenRole: Int]()
        for (t, role) in roles.enumerated() {
            var s = sums[role] ?? Array(repeating: 0, count: n)
            for a in 0..<n { s[a] += Double(values[t * n + a]) }
            sums[role] = s
            counts[role, default: 0] += 1
        }
        var out: [String: Double] = [:]
        for (role, s) in sums { for (a, name) in adapters.enumerated() { out["router/\(role.name)/\(name)"] = s[a] / Double(counts[role]!) } }
        return out
    }

    /// The examples of the next multimodal batch: this shard's block of `multimodal.batch_size`.
    func nextMultimodalIndices() -> [Int] {
        shard.take(recipe.multimodal.batchSize) { multimodalSampler.next().step }
    }

    /// A multimodal VQA batch (question → answer, LM loss only) after each robot update.
    public func auxiliaryLoss() throws -> MicroBatch? {
        guard let data = multimodal else { return nil }
        let started = Date()
        let indices = nextMultimodalIndices()
        let pixels = try data.pixels(indices)
        let examples = indices.map { i in
            let e = data.examples[i]
            let made = conversations(Conversation([Conversation.Turn(user: e.question, answer: e.answer, queries: false)]))
            return (ids: made.ids, targets: made.targets)
        }
        let length = examples.map(\.ids.count).max()!
        let padded = examples.map { ChatTemplate.padded($0, to: length, tokenizer: stage1.prompt.tokenizer) }
        let tokens = imageTokens.others(pixels, indices: indices)
        let dataSeconds = Date().timeIntervalSince(started)
        let loss = vla.textLoss(ids: padded.flatMap(\.ids), targets: padded.flatMap(\.targets), batch: indices.count, length: length, imageTokens: tokens)
        return MicroBatch(loss: loss, samples: indices.count, dataSeconds: dataSeconds)
    }

    public func validationLoss(batches: Int) throws -> Double? { nil }

    public func save(into state: inout TrainerState) {
        loader.save(into: &state)
        multimodalSampler.save(into: &state, name: "multimodal_sampler")
        state.setRNG("lora_dropout", vla.adapters.rng)
    }

    public func restore(from state: TrainerState) throws {
        try loader.restore(from: state)
        try multimodalSampler.restore(from: state, name: "multimodal_sampler")
        vla.adapters.rng = try state.rng("lora_dropout")
    }
}
