import Foundation

/// Recipe `task:` names and how to train them. Each stage registers its recipe type and task here.
public enum TaskRegistry {
    public static let names = ["sequence-lm"]

    /// Resolves the recipe, prepares the run folder and trains; returns how the run ended.
    public static func train(recipe url: URL, overrides: [String], runDirectory: URL?, mode: ResumeMode,
                             command: String) throws -> TrainingOutcome {
        let raw = try RecipeLoader.load(url, overrides: overrides)
        guard case .map(let top) = raw, case .string(let task)? = top["task"] else {
            throw RecipeError("\(url.path): missing 'task:' (one of \(names.joined(separator: ", ")))")
        }
        switch task {
        case "sequence-lm":
            let prepared = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: overrides, runDirectory: runDirectory, mode: mode)
            let trainer = Trainer(train: prepared.recipe.train, task: SequenceLMTask(prepared.recipe), run: prepared.run, lock: prepared.lock)
            return try trainer.run(header: RunHeader.lines(command: command, recipe: url.path) + prepared.notes)
        default:
            let hint = RecipeValidator.closest(task, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            throw RecipeError("\(url.path): task: unknown task '\(task)'\(hint); known: \(names.joined(separator: ", "))")
        }
    }
}
