import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// Recipe of `vlm` (stage 0, `pretrain-vlm`): the whole VLM trained on image/question/answer data.
public struct VLMRecipe: RecipeSchema {
    public struct Model: Codable, Sendable, Equatable {
        public var imageSize = 32
        public var patchSize = 4
        public var visionHiddenSize = 64
        public var visionLayers = 2
        public var visionHeads = 4
        public var visionIntermediateSize = 128
        public var hiddenSize = 96
        public var numLayers = 2
        public var numHeads = 4
        public var numKeyValueHeads = 2
        public var intermediateSize = 192
        public var tieWordEmbeddings = true
        /// Token embedding init std. Image tokens enter the LM at the projector's scale (norm ~ √width),
        /// so text embeddings far smaller than that get drowned in the residual stream.
        public var embeddingInitStd = 0.02
        /// Subtract each image's mean patch feature before the projector (experimental; off = InternVL).
        public var centerImageFeatures = false
    }
    public struct Tokenizer: Codable, Sendable, Equatable {
        /// Trained on the recipe's text at the start of a run (kept in the run folder).
        public var vocabSize = 384
        /// Latent action query tokens reserved now and trained in stage 1 (8 tiny, 16 small; 64 in the paper).
        public var actionQueries = 8
    }
    public struct Data: Codable, Sendable, Equatable {
        /// VQA files (globs allowed) in the layout of Datasets/vqa/generate_shapes.py.
        public var files: [String] = []
        public var trainSplit = "train"
        public var testSplit = "test"
        /// Tokens per example (prompt with image placeholders + answer), padded.
        public var maxLength = 48
        /// Held-out examples scored by exact match at each evaluation (0: none).
        public var evalExamples = 100
    }

    public var task = "vlm"
    public var model = Model()
    public var tokenizer = Tokenizer()
    public var data = Data()
    public var train = TrainSection()

    public init() {}

    public func validate() throws {
        guard task == "vlm" else { throw RecipeError("task: this recipe type is 'vlm', got '\(task)'") }
        try train.validate()
        guard !data.files.isEmpty else { throw RecipeError("data.files: list the VQA files") }
        guard model.imageSize % (2 * model.patchSize) == 0 else {
            throw RecipeError("model.image_size: must be a multiple of 2 × patch_size (the projector merges 2×2 patches)")
        }
        guard model.visionHiddenSize % model.visionHeads == 0, model.hiddenSize % model.numHeads == 0,
              model.numHeads % model.numKeyValueHeads == 0 else {
            throw RecipeError("model: widths must divide by their head counts, and num_heads by num_key_value_heads")
        }
        let reserved = ChatTemplate.specialTokens(actionQueries: tokenizer.actionQueries).count
        guard tokenizer.actionQueries >= 0, tokenizer.vocabSize > 256 + reserved else {
            throw RecipeError("tokenizer.vocab_size: must exceed \(256 + reserved) (256 byte symbols + \(reserved) special tokens); " +
                              "tokenizer.action_queries must be >= 0")
        }
        guard data.maxLength > 0, data.evalExamples >= 0 else { throw RecipeError("data.max_length must be positive, data.eval_examples >= 0") }
    }

    /// The VLM this recipe describes, freshly initialised from `train.seed`.
    func makeModel(tokenizer: BPETokenizer) -> VisionLanguageModel {
        var rng = RNG(seed: UInt64(train.seed))
        let vlm = VisionLanguageModel(vision: visionConfig, language: languageConfig, vocabSize: tokenizer.vocabularySize,
                                      numLayers: model.numLayers, imageTokenId: tokenizer.id(of: ChatTemplate.image)!,
                                      tieWordEmbeddings: model.tieWordEmbeddings, rng: &rng)
        vlm.centerImageFeatures = model.centerImageFeatures
        return vlm
    }

    var visionConfig: VisionConfig {
        VisionConfig(imageSize: model.imageSize, patchSize: model.patchSize, hiddenSize: model.visionHiddenSize,
                     numLayers: model.visionLayers, numHeads: model.visionHeads, intermediateSize: model.visionIntermediateSize)
    }
    var languageConfig: TransformerConfig {
        var config = TransformerConfig(hiddenSize: model.hiddenSize, numHeads: model.numHeads, numKeyValueHeads: model.numKeyValueHeads,
                                       intermediateSize: model.intermediateSize)
        config.embeddingInitStd = Float(model.embeddingInitStd)
        return config
    }
}

/// Stage 0: image + question → answer, cross-entropy on the answer tokens.
public final class VLMTask: TrainingTask {
    public let recipe: VLMRecipe
    public let vlm: VisionLanguageModel
    public let tokenizer: BPETokenizer
    public let template: ChatTemplate
    let train: VQADataset
    let test: VQADataset
    var sampler: EpisodeSampler
    let shard: DataShard
    public var model: Module { vlm }

    /// Opens the data and the tokenizer: the run folder's tokenizer.json when there is one (a
    /// resumed run keeps its vocabulary), else one trained on the training text and saved there.
    public init(_ recipe: VLMRecipe, run: RunDirectory, shard: DataShard = .whole) throws {
        (self.recipe, self.shard) = (recipe, shard)
        let files = try EpisodeDataSection.expand(recipe.data.files, key: "data.files")
        train = try VQADataset(files: files, split: recipe.data.trainSplit)
        test = try VQADataset(files: files, split: recipe.data.testSplit)
        guard train.imageShape == [recipe.model.imageSize, recipe.model.imageSize, 3] else {
            throw RecipeError("model.image_size: \(recipe.model.imageSize) but the data's images are \(train.imageShape)")
        }
        let tokenizerURL = run.url.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: tokenizerURL.path) {
            tokenizer = try BPETokenizer(contentsOf: tokenizerURL)
        } else {
            let text = train.examples.flatMap { [$0.question, $0.answer] } + ["user\n", "assistant\n"]
            tokenizer = try BPETokenizer.train(corpus: text, vocabularySize: recipe.tokenizer.vocabSize,
                                               specialTokens: ChatTemplate.specialTokens(actionQueries: recipe.tokenizer.actionQueries))
            try tokenizer.write(to: tokenizerURL)
        }
        vlm = recipe.makeModel(tokenizer: tokenizer)
        template = ChatTemplate(imageTokens: vlm.tokensPerImage)
        sampler = EpisodeSampler(lengths: [train.examples.count], seed: UInt64(recipe.train.seed) &+ 1)
        // Every example must fit whole: a cut answer would train on half an answer.
        let template = template, tokenizer = tokenizer
        let longest = (train.examples + test.examples).map { e in
            tokenizer.encode(template.prompt(question: e.question, withImage: true)).count + tokenizer.encode(e.answer + ChatTemplate.imEnd).count
        }.max() ?? 0
        guard longest <= recipe.data.maxLength else {
            throw RecipeError("data.max_length: \(recipe.data.maxLength) tokens, but the longest example takes \(longest) " +
                              "(\(vlm.tokensPerImage) of them image tokens); raise it to at least \(longest)")
        }
    }

    /// Images [B, H, W, 3] in [0, 1], ids and targets of the examples `indices` of `data`.
    func batch(_ data: VQADataset, _ indices: [Int]) throws -> (images: Tensor, ids: [Int32], targets: [Int32]) {
        let images = try data.pixels(indices)
        var ids: [Int32] = [], targets: [Int32] = []
        for i in indices {
            let e = data.examples[i]
            let example = template.trainingExample(question: e.question, answer: e.answer, withImage: true, tokenizer: tokenizer,
                                                   length: recipe.data.maxLength)
            ids += example.ids
            targets += example.targets
        }
        return (images, ids, targets)
    }

    func loss(_ b: (images: Tensor, ids: [Int32], targets: [Int32]), count: Int) -> Tensor {
        crossEntropy(logits: vlm(b.ids, batch: count, length: recipe.data.maxLength, images: b.images), targets: b.targets)
    }

    public func trainingLoss() throws -> MicroBatch {
        let started = Date()
        let indices = shard.take(recipe.train.batchSize) { sampler.next().step }
        let b = try batch(train, indices)
        let dataSeconds = Date().timeIntervalSince(started)
        return MicroBatch(loss: loss(b, count: indices.count), samples: indices.count, dataSeconds: dataSeconds)
    }

    public func validationLoss(batches: Int) throws -> Double? {
        var total = 0.0, n = 0
        for k in 0..<batches {
            let indices = (0..<recipe.train.batchSize).map { (k * recipe.train.batchSize + $0) % test.examples.count }
            total += Double(loss(try batch(test, indices), count: indices.count).item())
            n += 1
        }
        return total / Double(max(n, 1))
    }

    /// Exact-match accuracy of greedy answers on the first `limit` examples of a split, per question type.
    public func exactMatch(split: String, limit: Int? = nil) throws -> VQAScore {
        let data = split == recipe.data.testSplit ? test : split == recipe.data.trainSplit ? train : try VQADataset(
            files: EpisodeDataSection.expand(recipe.data.files, key: "data.files"), split: split)
        var rng = RNG(seed: 0)
        return try VQAScore.exactMatch(data, split: split, limit: limit, tokenizer: tokenizer) { i, budget, stop in
            let (images, _, _) = try batch(data, [i])
            let prompt = tokenizer.encode(template.prompt(question: data.examples[i].question, withImage: true))
            return vlm.generate(prompt: prompt, image: images, maxNewTokens: budget, stop: [stop], rng: &rng)
        }
    }

    public func save(into state: inout TrainerState) { sampler.save(into: &state) }
    public func restore(from state: TrainerState) throws { try sampler.restore(from: state) }
}

/// A trained stage-0 run as the later stages start from it: resolved recipe, tokenizer, and the model
/// at the newest checkpoint.
public struct TrainedVLM {
    public let recipe: VLMRecipe
    public let tokenizer: BPETokenizer
    public let vlm: VisionLanguageModel
    public let checkpoint: URL

    public static func load(runFolder: URL) throws -> TrainedVLM {
        let recipe = try RecipeValidator.read(runFolder.appendingPathComponent("recipe.yaml"), as: VLMRecipe.self,
                                              hint: "not a stage-0 run folder? train one with `make vlm`")
        let tokenizer = try BPETokenizer(contentsOf: runFolder.appendingPathComponent("tokenizer.json"))
        guard let resume = try RunDirectory(runFolder).latestCheckpoint() else { throw RecipeError("\(runFolder.path): no checkpoint yet") }
        let vlm = recipe.makeModel(tokenizer: tokenizer)
        try vlm.load(resume.checkpoint.model)
        return TrainedVLM(recipe: recipe, tokenizer: tokenizer, vlm: vlm, checkpoint: resume.checkpoint.url)
    }
}
