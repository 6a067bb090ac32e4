import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// A trained stage-1 model ready to act: observation (image, proprio, instruction) → un-normalised
/// action chunk. Loads from a stage-1 run folder (newest checkpoint) or from an export bundle; both
/// hold the same files beside the weights:
///
///     recipe.yaml       the stage-1 recipe, resolved        vlm_recipe.yaml   the stage-0 recipe, resolved
///     tokenizer.json    the VLM's tokenizer                 norm_stats.json   action/proprio quantiles
///     observation.json  how the training frames were rendered (camera, image size), for clients
public final class ActionPolicy {
    public static let recipeFiles = ["recipe.yaml", "vlm_recipe.yaml", "tokenizer.json", "norm_stats.json", "observation.json"]

    public let vla: InstructVLA
    public let prompt: ActionPrompt
    public let stats: NormStats
    public let recipe: ActionPretrainingRecipe
    public let imageSize: Int
    /// Where the weights came from (a checkpoint folder or a bundle).
    public let source: URL
    /// The camera the training frames came from, when the data said.
    public let camera: String?

    public var horizon: Int { vla.actionModel.config.horizon }
    public var actionDim: Int { vla.actionModel.config.actionDim }
    public var proprioDim: Int { stats.schema.proprioDim }

    /// The architecture the files in `folder` describe, with freshly initialised weights.
    init(architectureIn folder: URL, weights: URL) throws {
        let hint = "a stage-1 run folder or export bundle has \(Self.recipeFiles.joined(separator: ", "))"
        recipe = try RecipeValidator.read(folder.appendingPathComponent("recipe.yaml"), as: ActionPretrainingRecipe.self, hint: hint)
        let vlmRecipe = try RecipeValidator.read(folder.appendingPathComponent("vlm_recipe.yaml"), as: VLMRecipe.self, hint: hint)
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
        let expert = recipe.expertConfig(imageSize: imageSize, latentSize: vlmRecipe.model.hiddenSize,
                                         proprioDim: stats.schema.proprioDim, actionDim: stats.schema.actionDim)
        vla = InstructVLA(vlm: vlm, expert: expert, lora: recipe.loraSettings, queryIds: prompt.queryIds, seed: UInt64(recipe.train.seed))
        source = weights
    }

    /// Loads a stage-1 run folder (its newest checkpoint) or an export bundle (verified against its manifest).
    public convenience init(contentsOf folder: URL) throws {
        let bundle = FileManager.default.fileExists(atPath: folder.appendingPathComponent(ExportBundle.manifestFile).path)
        let weights: URL
        if bundle {
            try ExportBundle.verify(folder)
            weights = folder.appendingPathComponent(RunDirectory.modelFile)
        } else {
            guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("recipe.yaml").path) else {
                throw RecipeError("\(folder.path): neither an export bundle (manifest.json) nor a run folder (recipe.yaml)")
            }
            guard let resume = try RunDirectory(folder).latestCheckpoint() else { throw RecipeError("\(folder.path): no checkpoint yet") }
            weights = resume.checkpoint.url.appendingPathComponent(RunDirectory.modelFile)
        }
        try self.init(architectureIn: folder, weights: weights)
        try vla.load(SafetensorsFile(url: weights))
        vla.adapters.training = false
    }

    /// The un-normalised action chunk (horizon × actionDim, row-major) for one observation.
    /// `image` is HWC uint8 (top row first), `proprio` in the environment's units; the flow starts
    /// from noise drawn from `rng`.
    public func act(image: [UInt8], proprio: [Float], instruction: String, rng: inout RNG) throws -> [Float] {
        guard image.count == imageSize * imageSize * 3 else {
            throw RecipeError("image: expected \(imageSize)×\(imageSize)×3 bytes, got \(image.count)")
        }
        guard proprio.count == proprioDim else { throw RecipeError("proprio: expected \(proprioDim) values, got \(proprio.count)") }
        let pixels = Tensor(image.map { Float($0) / 255 }, shape: [1, imageSize, imageSize, 3])
        var state = proprio
        NormStats.normalize(&state, stats.proprio)
        let example = prompt.example(instruction: instruction, motion: nil)
        let inputs = ActionInputs(ids: example.ids, targets: example.targets, length: example.ids.count,
                                  imageTokens: withoutGrad { vla.vlm.imageTokens(pixels) }, pixels: pixels,
                                  proprio: recipe.model.useProprio ? Tensor(state, shape: [1, proprioDim]) : nil)
        let noise = Tensor((0..<(horizon * actionDim)).map { _ in rng.normal() }, shape: [1, horizon, actionDim])
        var actions = vla.predictActions(inputs, noise: noise).toArray()
        NormStats.unnormalize(&actions, stats.actions)
        return actions
    }

    /// Writes an export bundle of this policy's weights and files (read from `folder`, the run folder
    /// or bundle it was loaded from).
    public func export(from folder: URL, to bundle: URL) throws {
        var files: [String: Data] = [:]
        for name in Self.recipeFiles { files[name] = try Data(contentsOf: folder.appendingPathComponent(name)) }
        let schema: [String: Any] = [
            "stage": "pretrain-action", "observation": ["observation/image": [imageSize, imageSize, 3], "observation/state": [proprioDim], "prompt": "str"],
            "actions": [horizon, actionDim], "action_keys": stats.schema.actionKey, "proprio_keys": stats.schema.proprioKeys,
            "flow_matching_steps": 10,
        ]
        files["schema.json"] = try JSONSerialization.data(withJSONObject: schema, options: [.prettyPrinted, .sortedKeys])
        try ExportBundle.write(to: bundle, weights: vla.namedParameters(), files: files, weightMetadata: ["stage": "pretrain-action"])
    }
}
