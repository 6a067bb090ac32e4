import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// A trained stage-1 or stage-2 model ready to act: observation (image, proprio, instruction) →
/// un-normalised action chunk (and, for stage 2 thinking first, its response). Loads from a run
/// folder (newest checkpoint) or from an export bundle; both hold the same files beside the weights:
///
///     recipe.yaml       the run's recipe, resolved          vlm_recipe.yaml   the stage-0 recipe, resolved
///     tokenizer.json    the VLM's tokenizer                 norm_stats.json   action/proprio quantiles
///     observation.json  how the training frames were rendered (camera, image size), for clients
///     stage1_recipe.yaml  (stage 2 only) the stage-1 recipe the architecture comes from
public final class ActionPolicy {
    public static let recipeFiles = ["recipe.yaml", "vlm_recipe.yaml", "tokenizer.json", "norm_stats.json", "observation.json"]
    public static let stage1RecipeFile = "stage1_recipe.yaml"

    public let vla: InstructVLA
    public let prompt: ActionPrompt
    public let stats: NormStats
    /// The stage-1 recipe (the architecture); for a stage-2 model also its `instruct-tune` recipe.
    public let recipe: ActionPretrainingRecipe
    public let instruct: InstructTuningRecipe?
    /// The stage-0 recipe: the VLM's architecture and the data it was trained on.
    public let vlmRecipe: VLMRecipe
    public let imageSize: Int
    /// Where the weights came from: a checkpoint's model.safetensors (or its ema.safetensors, the
    /// trainable weights' average, beside it) or a bundle's.
    public let source: URL
    /// The camera the training frames came from, when the data said.
    public let camera: String?
    /// Names of the camera views beside the first (the VLM's), in order; a client sends each as
    /// "observation/<name>_image".
    public var extraCameras: [String] { recipe.data.imageKeys.dropFirst().map(Self.cameraName) }
    public var cameras: Int { recipe.data.imageKeys.count }
    /// The observation keys of the views, in openpi's naming.
    public var observationImageKeys: [String] { ["observation/image"] + extraCameras.map { "observation/\($0)_image" } }

    /// A view's name from its data key: generate.py stores camera `side` as `obs/side_rgb`.
    public static func cameraName(imageKey: String) -> String {
        imageKey.hasSuffix("_rgb") ? String(imageKey.dropLast(4)) : imageKey
    }

    public var horizon: Int { vla.actionModel.config.horizon }
    public var actionDim: Int { vla.actionModel.config.actionDim }
    public var proprioDim: Int { stats.schema.proprioDim }

    public var stage: String { instruct == nil ? "pretrain-action" : "instruct-tune" }

    /// The architecture the files in `folder` describe, with freshly initialised weights.
    init(architectureIn folder: URL, weights: URL) throws {
        let hint = "a stage-1 or stage-2 run folder or export bundle has \(Self.recipeFiles.joined(separator: ", "))"
        let recipeURL = folder.appendingPathComponent("recipe.yaml")
        guard case .map(let top) = try RecipeLoader.load(recipeURL), case .string(let task)? = top["task"] else {
            throw RecipeError("\(recipeURL.path): missing 'task:' (\(hint))")
        }
        switch task {
        case "pretrain-action":
            recipe = try RecipeValidator.read(recipeURL, as: ActionPretrainingRecipe.self, hint: hint)
            instruct = nil
        case "instruct-tune":
            instruct = try RecipeValidator.read(recipeURL, as: InstructTuningRecipe.self, hint: hint)
            recipe = try RecipeValidator.read(folder.appendingPathComponent(Self.stage1RecipeFile), as: ActionPretrainingRecipe.self, hint: hint)
        default:
            throw RecipeError("\(recipeURL.path): task '\(task)' is not a policy (pretrain-action or instruct-tune)")
        }
        vlmRecipe = try RecipeValidator.read(folder.appendingPathComponent("vlm_recipe.yaml"), as: VLMRecipe.self, hint: hint)
        let tokenizer = try BPETokenizer(contentsOf: folder.appendingPathComponent("tokenizer.json"))
        let statsURL = folder.appendingPathComponent("norm_stats.json")
        guard let statsData = try? Data(contentsOf: statsURL) else { throw RecipeError("\(statsURL.path): missing") }
        stats = try JSONDecoder().decode(NormStats.self, from: statsData)
        imageSize = vlmRecipe.model.imageSize
        let observationURL = folder.appendingPathComponent("observation.json")
        let observation = (try? Data(contentsOf: observationURL)).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        guard let observation else { throw RecipeError("\(observationURL.path): missing or not a JSON object") }
        camera = observation["camera"] as? String
        let vlm = vlmRecipe.makeModel(tokenizer: tokenizer)
        prompt = try ActionPrompt(template: ChatTemplate(imageTokens: vlm.tokensPerImage), tokenizer: tokenizer, numQueries: recipe.model.actionQueries)
        let expert = try recipe.expertConfig(imageSize: imageSize, latentSize: vlmRecipe.model.hiddenSize,
                                         proprioDim: stats.schema.proprioDim, actionDim: stats.schema.actionDim)
        vla = InstructVLA(vlm: vlm, expert: expert, lora: recipe.lora.settings, queryIds: prompt.queryIds, seed: UInt64(recipe.train.seed))
        instruct?.addMixture(to: vla)
        source = weights
    }

    /// Loads a stage-1 run folder (its newest checkpoint) or an export bundle (verified against its manifest).
    /// - Parameter averaged: where the checkpoint has them (`train.ema_decay`), act with the moving
    ///   average of the trained weights rather than their last values. A bundle holds whichever its
    ///   export chose.
    public convenience init(contentsOf folder: URL, averaged: Bool = true) throws {
        let bundle = FileManager.default.fileExists(atPath: folder.appendingPathComponent(ExportBundle.manifestFile).path)
        let weights: URL
        var average: SafetensorsFile?
        if bundle {
            try ExportBundle.verify(folder)
            weights = folder.appendingPathComponent(RunDirectory.modelFile)
        } else {
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("recipe.yaml").path) else {
                throw RecipeError("\(folder.path): neither an export bundle (manifest.json) nor a run folder (recipe.yaml)")
            }
            guard let resume = try RunDirectory(folder).latestCheckpoint() else { throw RecipeError("\(folder.path): no checkpoint yet") }
            average = averaged ? resume.checkpoint.ema : nil
            weights = resume.checkpoint.url.appendingPathComponent(average == nil ? RunDirectory.modelFile : RunDirectory.emaFile)
        }
        try self.init(architectureIn: folder, weights: weights)
        let model = try SafetensorsFile(url: weights.deletingLastPathComponent().appendingPathComponent(RunDirectory.modelFile))
        try vla.load(model)
        // the average covers the trainable weights only; the frozen rest comes from model.safetensors
        if let average { try vla.load(average, mode: .subset) }
        vla.adapters.training = false
    }

    /// Whether `act` answers in words before acting by default (stage 2 recipes say so).
    public var thinksByDefault: Bool { instruct?.inference.think ?? false }

    /// The model's response to an instruction asked with "First answer my question." (greedy,
    /// routed per token, until the first query token): its token ids and text.
    /// Only the first view is read: the VLM's.
    public func respond(image: [UInt8], instruction: String) throws -> (ids: [Int32], text: String) {
        let (pixels, _) = try observation(images: [image], proprio: nil)
        let open = thinkingPrompt(instruction)
        let imEnd = prompt.tokenizer.id(of: ChatTemplate.imEnd)!
        let generated = vla.generate(prompt: open, imageTokens: withoutGrad { vla.vlm.imageTokens(ActionInputs.vlmView(pixels)) },
                                     maxNewTokens: instruct?.inference.maxResponseTokens ?? 40, stop: [prompt.queryIds[0], imEnd])
        let ids = Array(generated.prefix { $0 != prompt.queryIds[0] && $0 != imEnd })
        return (ids, prompt.tokenizer.decode(ids).trimmingCharacters(in: .whitespaces))
    }

    /// The un-normalised action chunk (horizon × actionDim, row-major) for one observation.
    /// `images` are its camera views (`cameras` of them, the VLM's first), each HWC uint8 (top row
    /// first), `proprio` in the environment's units; the flow starts
    /// from noise drawn from `rng`, times `noiseScale` (0 starts every chunk from the mean of the
    /// noise, which makes the policy deterministic). With `response` (from `respond`), the model acts
    /// after saying it, as in stage 2's thinking mode; without, the plain command is answered by the queries.
    public func act(images: [[UInt8]], proprio: [Float], instruction: String, response: [Int32]? = nil, rng: inout RNG,
                    noiseScale: Float = 1) throws -> [Float] {
        try act(images: images, proprio: proprio, instruction: instruction, response: response,
                noise: (0..<(horizon * actionDim)).map { _ in noiseScale * rng.normal() })
    }

    /// As `act(…rng:)`, with the flow started from the given noise (horizon × actionDim values).
    public func act(images: [[UInt8]], proprio: [Float], instruction: String, response: [Int32]? = nil, noise: [Float]) throws -> [Float] {
        precondition(noise.count == horizon * actionDim, "ActionPolicy.act: \(noise.count) noise values for a \(horizon)×\(actionDim) chunk")
        let inputs = try inputs(images: images, proprio: proprio, instruction: instruction, response: response)
        var actions = vla.predictActions(inputs, noise: Tensor(noise, shape: [1, horizon, actionDim])).toArray()
        NormStats.unnormalize(&actions, stats.actions)
        return actions
    }

    /// The auxiliary head's standardised prediction for one observation (plain command), or nil
    /// for a model trained without an auxiliary loss.
    public func auxiliary(images: [[UInt8]], proprio: [Float], instruction: String) throws -> [Float]? {
        guard vla.actionModel.auxiliaryHead != nil else { return nil }
        return vla.predictAuxiliary(try inputs(images: images, proprio: proprio, instruction: instruction, response: nil)).toArray()
    }

    /// One observation as model inputs: the VLM's image tokens, the expert's pixels and proprio, and
    /// the prompt (the thinking prompt and `response` when given, else the plain command) with its queries.
    func inputs(images: [[UInt8]], proprio: [Float], instruction: String, response: [Int32]?) throws -> ActionInputs {
        guard images.count == cameras else {
            throw RecipeError("images: this policy reads \(cameras) camera view(s) (\(recipe.data.imageKeys.joined(separator: ", "))), got \(images.count)")
        }
        let (pixels, state) = try observation(images: images, proprio: proprio)
        let ids: [Int32]
        if let response {
            // The open thinking prompt, the response as the model said it, then the queries.
            ids = thinkingPrompt(instruction) + response + prompt.queryIds
        } else {
            ids = prompt.example(instruction: instruction, motion: nil).ids
        }
        return ActionInputs(ids: ids, targets: Array(repeating: -100, count: ids.count), length: ids.count,
                            imageTokens: withoutGrad { vla.vlm.imageTokens(ActionInputs.vlmView(pixels)) },
                            pixels: pixels,
                            proprio: recipe.model.expertProprio(state))
    }

    /// "What action should the robot take to {instruction}? First answer my question." up to the
    /// assistant header: what the model continues with its response.
    func thinkingPrompt(_ instruction: String) -> [Int32] {
        prompt.tokenized(Conversation([prompt.actionTurn(instruction, .think)]), open: true).ids
    }

    /// Pixels [1, C, S, S, 3] in [0, 1] of the C views and normalised proprio [1, P] of one observation, validated.
    func observation(images: [[UInt8]], proprio: [Float]?) throws -> (pixels: Tensor, state: Tensor?) {
        for (i, image) in images.enumerated() where image.count != imageSize * imageSize * 3 {
            throw RecipeError("image \(i): expected \(imageSize)×\(imageSize)×3 bytes, got \(image.count)")
        }
        let pixels = Tensor(images.joined().map { Float($0) / 255 }, shape: [1, images.count, imageSize, imageSize, 3])
        guard var state = proprio else { return (pixels, nil) }
        guard state.count == proprioDim else { throw RecipeError("proprio: expected \(proprioDim) values, got \(state.count)") }
        NormStats.normalize(&state, stats.proprio)
        return (pixels, Tensor(state, shape: [1, proprioDim]))
    }

    /// Writes an export bundle of this policy's weights and files (read from `folder`, the run folder
    /// or bundle it was loaded from).
    public func export(from folder: URL, to bundle: URL) throws {
        var files: [String: Data] = [:]
        for name in Self.recipeFiles + (instruct == nil ? [] : [Self.stage1RecipeFile]) {
            files[name] = try Data(contentsOf: folder.appendingPathComponent(name))
        }
        var observation: [String: Any] = ["observation/state": [proprioDim], "prompt": "str"]
        for key in observationImageKeys { observation[key] = [imageSize, imageSize, 3] }
        var schema: [String: Any] = [
            "stage": stage, "observation": observation,
            "actions": [horizon, actionDim], "action_keys": stats.schema.actionKey, "proprio_keys": stats.schema.proprioKeys,
            "flow_matching_steps": 10,
        ]
        if let instruct, let head = vla.scaleHead {
            schema["adapters"] = head.adapterNames
            schema["thinking"] = ["default": instruct.inference.think, "think_every": instruct.inference.thinkEvery,
                                  "max_response_tokens": instruct.inference.maxResponseTokens]
        }
        files["schema.json"] = try JSONSerialization.data(withJSONObject: schema, options: [.prettyPrinted, .sortedKeys])
        try ExportBundle.write(to: bundle, weights: vla.namedParameters(), files: files, weightMetadata: ["stage": stage])
    }
}
