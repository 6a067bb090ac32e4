import Autograd
import Checkpoint
import Foundation

/// `vla eval --vqa`: rebuilds a `vlm` run from its folder (resolved recipe, tokenizer, newest
/// checkpoint) and scores greedy answers by exact match.
public enum VQAEvaluation {
    public static func run(runFolder: URL, split: String, limit: Int?) throws -> VQAScore {
        let recipe = try RecipeValidator.read(runFolder.appendingPathComponent("recipe.yaml"), as: VLMRecipe.self, hint: "not a run folder?")
        let run = try RunDirectory(runFolder)
        guard let resume = try run.latestCheckpoint() else { throw RecipeError("\(runFolder.path): no checkpoint to evaluate") }
        let task = try VLMTask(recipe, run: run)
        try task.vlm.load(resume.checkpoint.model)
        return try withoutGrad { try task.exactMatch(split: split, limit: limit) }
    }
}
