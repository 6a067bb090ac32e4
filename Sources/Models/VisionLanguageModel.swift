import Autograd

/// The VLM of the paper's figure, at toolkit scale: a vision encoder, the pixel-shuffle projector
/// and a Qwen2-style language model. Image placeholder tokens in the text are replaced, in order,
/// by the image's projected tokens. Keys follow InternVL: `vision_model.*`, `mlp1.*`,
/// `language_model.model.*` (and `language_model.lm_head` when embeddings are not tied).
public final class VisionLanguageModel: Module {
    public let visionModel: VisionEncoder
    public let mlp1: Projector
    public let languageModel: CausalLM
    public let imageTokenId: Int32
    /// Subtract each image's mean patch feature before projecting (not in InternVL; an experiment
    /// against image tokens dominated by a component they all share).
    public var centerImageFeatures = false

    public init(vision: VisionConfig, language: TransformerConfig, vocabSize: Int, numLayers: Int, imageTokenId: Int32,
                tieWordEmbeddings: Bool = true, rng: inout RNG) {
        visionModel = VisionEncoder(vision, rng: &rng)
        mlp1 = Projector(visionWidth: vision.hiddenSize, languageWidth: language.hiddenSize, rng: &rng)
        languageModel = CausalLM(vocabSize: vocabSize, numLayers: numLayers, language, tieWordEmbeddings: tieWordEmbeddings, rng: &rng)
        self.imageTokenId = imageTokenId
    }

    /// Placeholder tokens one image takes in the text.
    public var tokensPerImage: Int { visionModel.config.numPatches / 4 }

    /// Image tokens [B, tokensPerImage, C] of pixels [B, H, W, 3] in [0, 1].
    public func imageTokens(_ pixels: Tensor) -> Tensor {
        let features = visionModel(pixels)
        return mlp1(centerImageFeatures ? features - mean(features, axes: [1], keepDims: true) : features)
    }

    /// Embeddings [B, T, C] of ids [B, T]; each sample's placeholder positions (exactly
    /// `tokensPerImage` of them when `images` is given) are filled with its image tokens.
    public func inputEmbeddings(_ ids: [Int32], batch: Int, length: Int, images: Tensor?) -> Tensor {
        let text = languageModel.embed(ids, batch: batch, length: length)
        guard let images else {
            precondition(!ids.contains(imageTokenId), "VisionLanguageModel: image placeholders in the text but no images")
            return text
        }
        precondition(images.shape[0] == batch, "VisionLanguageModel: \(images.shape[0]) images for a batch of \(batch)")
        let positions = ids.indices.filter { ids[$0] == imageTokenId }
        precondition(positions.count == batch * tokensPerImage,
                     "VisionLanguageModel: \(positions.count) image placeholders; each sample needs exactly \(tokensPerImage)")
        let c = text.shape[2]
        let tokens = imageTokens(images).reshaped([batch * tokensPerImage, c])
        return replacingRows(text.reshaped([batch * length, c]), at: positions, with: tokens).reshaped([batch, length, c])
    }

    /// Logits [B, T, vocab].
    public func callAsFunction(_ ids: [Int32], batch: Int, length: Int, images: Tensor?) -> Tensor {
        languageModel.logits(languageModel.hiddenStates(embeddings: inputEmbeddings(ids, batch: batch, length: length, images: images)))
    }

    /// Answers a prompt (batch 1, with its image placeholders) by greedy or sampled decoding.
    public func generate(prompt: [Int32], image: Tensor?, maxNewTokens: Int, temperature: Float = 0, stop: Set<Int32> = [],
                         rng: inout RNG) -> [Int32] {
        let embeddings = withoutGrad { inputEmbeddings(prompt, batch: 1, length: prompt.count, images: image) }
        return languageModel.generate(promptEmbeddings: embeddings, maxNewTokens: maxNewTokens, temperature: temperature, stop: stop, rng: &rng)
    }
}

/// The ChatML-style conversation layout the VLM is trained and queried with:
///
///     <|im_start|>user\n<image>…<image>\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>
///
/// Training supervises the answer and its closing `<|im_end|>` only.
public struct ChatTemplate: Sendable {
    public static let imStart = "<|im_start|>", imEnd = "<|im_end|>", image = "<image>"
    /// Special tokens every tokenizer of the toolkit reserves, in id order: the chat markers, the
    /// image placeholder, then `actionQueries` latent action query tokens `<new_token_i>` (reserved
    /// at stage 0, their rows trained in stage 1).
    public static func specialTokens(actionQueries: Int) -> [String] {
        [imStart, imEnd, image] + (0..<actionQueries).map(actionQuery)
    }

    /// The i-th latent action query token, as the paper's code names them.
    public static func actionQuery(_ i: Int) -> String { "<new_token_\(i)>" }

    public let imageTokens: Int

    public init(imageTokens: Int) { self.imageTokens = imageTokens }

    /// The prompt text up to and including the assistant header.
    public func prompt(question: String, withImage: Bool) -> String {
        let picture = withImage ? String(repeating: Self.image, count: imageTokens) + "\n" : ""
        return "\(Self.imStart)user\n\(picture)\(question)\(Self.imEnd)\n\(Self.imStart)assistant\n"
    }

    /// Ids and next-token targets (-100 outside the answer) of a question/answer pair, padded or
    /// cut to `length` (nil: as long as it is).
    public func trainingExample(question: String, answer: String, withImage: Bool, tokenizer: BPETokenizer,
                                length: Int?) -> (ids: [Int32], targets: [Int32]) {
        let promptIds = tokenizer.encode(prompt(question: question, withImage: withImage))
        let answerIds = tokenizer.encode(answer + Self.imEnd)
        let ids = promptIds + answerIds
        // targets[i] is the token after ids[i]; only answer tokens are predicted.
        var targets = [Int32](repeating: -100, count: ids.count)
        for i in (promptIds.count - 1)..<(ids.count - 1) { targets[i] = ids[i + 1] }
        guard let length else { return (ids, targets) }
        precondition(promptIds.count < length, "ChatTemplate: the prompt takes \(promptIds.count) tokens, more than the length \(length)")
        return Self.padded((Array(ids.prefix(length)), Array(targets.prefix(length))), to: length, tokenizer: tokenizer)
    }

    /// Right-pads an example with end-of-turn tokens that are not supervised.
    public static func padded(_ example: (ids: [Int32], targets: [Int32]), to length: Int, tokenizer: BPETokenizer) -> (ids: [Int32], targets: [Int32]) {
        let n = max(length - example.ids.count, 0)
        return (example.ids + Array(repeating: tokenizer.id(of: imEnd)!, count: n), example.targets + Array(repeating: -100, count: n))
    }
}
