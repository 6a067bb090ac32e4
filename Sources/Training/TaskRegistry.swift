import Autograd
import Foundation

/// Recipe `task:` names and how to train them. Each stage registers its recipe type and task here.
public enum TaskRegistry {
    public static let names = ["sequence-lm", "vlm", "pretrain-action"]

    /// Resolves the recipe, prepares the run folder and trains; returns how the run ended.
    /// - Parameter requiredTask: the task a stage executable runs (e.g. "vlm" for `pretrain-vlm`).
    public static func train(recipe url: URL, overrides: [String], runDirectory: URL?, mode: ResumeMode,
                             command: String, requiredTask: String? = nil) throws -> TrainingOutcome {
        let raw = try RecipeLoader.load(url, overrides: overrides)
        guard case .map(let top) = raw, case .string(let task)? = top["task"] else {
            throw RecipeError("\(url.path): missing 'task:' (one of \(names.joined(separator: ", ")))")
        }
        if let requiredTask, task != requiredTask {
            throw RecipeError("\(url.path): task is '\(task)', but this command trains '\(requiredTask)' recipes")
        }
        let header = RunHeader.lines(command: command, recipe: url.path)
        switch task {
        case "sequence-lm":
            let prepared = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode)
            let trainer = Trainer(train: prepared.recipe.train, task: SequenceLMTask(prepared.recipe), run: prepared.run, lock: prepared.lock)
            return try trainer.run(header: header + prepared.notes)
        case "vlm":
            let prepared = try RunSetup.prepare(VLMRecipe.self, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode)
            let task = try VLMTask(prepared.recipe, run: prepared.run)
            let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock)
            let (every, examples) = (prepared.recipe.train.evalEvery, prepared.recipe.data.evalExamples)
            if every > 0 && examples > 0 {
                trainer.addEvaluationHook(every: every, name: "vqa") { step in
                    let score = try withoutGrad { try task.exactMatch(split: prepared.recipe.data.testSplit, limit: examples) }
                    print(String(format: "step %d: held-out exact match %.1f%% on %d examples", step, score.accuracy * 100, examples))
                    fflush(nil)
                    return ["exact_match": score.accuracy]
                }
            }
            return try trainer.run(header: header + prepared.notes)
        case "pretrain-action":
            let prepared = try RunSetup.prepare(ActionPretrainingRecipe.self, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode)
            let task = try ActionPretrainingTask(prepared.recipe, run: prepared.run)
            let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock)
            return try trainer.run(header: header + prepared.notes + ["stage 0: \(prepared.recipe.model.vlm)"])
        default:
            let hint = RecipeValidator.closest(task, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            throw RecipeError("\(url.path): task: unknown task '\(task)'\(hint); known: \(names.joined(separator: ", "))")
        }
    }
}
