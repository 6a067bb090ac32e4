import Autograd
import Checkpoint
import Episodes
import Foundation
import Models

/// `vla eval --vqa`: exact-match accuracy of greedy answers on a held-out VQA split, per question
/// type. A `vlm` run is rebuilt from its folder; a stage-1 or stage-2 run (or bundle) answers with
/// its adapters and router on, on the stage-0 recipe's VQA data, so multimodal retention is one
/// command per stage.
public enum VQAEvaluation {
    public static func run(runFolder: URL, split: String, limit: Int?) throws -> VQAScore {
        let recipeURL = runFolder.appendingPathComponent("recipe.yaml")
        guard case .map(let top) = try RecipeLoader.load(recipeURL), case .string(let task)? = top["task"] else {
            throw RecipeError("\(recipeURL.path): missing 'task:' (not a run folder?)")
        }
        if task == "pretrain-action" || task == "instruct-tune" { return try policy(runFolder: runFolder, split: split, limit: limit) }
        let recipe = try RecipeValidator.read(recipeURL, as: VLMRecipe.self, hint: "not a run folder?")
        let run = try RunDirectory(runFolder)
        guard let resume = try run.latestCheckpoint() else { throw RecipeError("\(runFolder.path): no checkpoint to evaluate") }
        let vlmTask = try VLMTask(recipe, run: run)
        try vlmTask.vlm.load(resume.checkpoint.model)
        return try withoutGrad { try vlmTask.exactMatch(split: split, limit: limit) }
    }

    /// The VLA's answers (the whole model, as served) to the stage-0 data's questions.
    static func policy(runFolder: URL, split: String, limit: Int?) throws -> VQAScore {
        let policy = try ActionPolicy(contentsOf: runFolder)
        let vlmRecipe = try RecipeValidator.read(runFolder.appendingPathComponent("vlm_recipe.yaml"), as: VLMRecipe.self, hint: "a stage-1/2 run folder")
        let data = try VQADataset(files: EpisodeDataSection.expand(vlmRecipe.data.files, key: "vlm_recipe.yaml data.files"), split: split)
        let prompt = policy.prompt
        return try VQAScore.exactMatch(data, split: split, limit: limit, tokenizer: prompt.tokenizer) { i, budget, stop in
            let pixels = try data.pixels([i])
            let ids = prompt.tokenized(Conversation([Conversation.Turn(user: data.examples[i].question, answer: "", queries: false)]), open: true).ids
            return policy.vla.generate(prompt: ids, imageTokens: withoutGrad { policy.vla.vlm.imageTokens(pixels) }, maxNewTokens: budget, stop: [stop])
        }
    }
}
