import Checkpoint
import Foundation

/// What to do with an existing run folder.
public enum ResumeMode: Sendable {
    /// Resume when the folder has checkpoints, start fresh otherwise (the default).
    case automatic
    /// Resume, and fail if there is nothing to resume.
    case required
    /// Delete the folder and start over.
    case overwrite
}

/// A recipe resolved and a run folder ready for the trainer.
public struct PreparedRun<Recipe: RecipeSchema> {
    public let recipe: Recipe
    public let resolved: RecipeValue
    public let run: RunDirectory
    public let resuming: Bool
    /// The run folder's write lock, held from before the folder was touched; hand it to the Trainer.
    public let lock: RunLock
    /// Human-readable notes (e.g. keys changed on resume).
    public let notes: [String]
}

public enum RunSetup {
    /// The default run folder of a recipe file: Checkpoints/<recipe folder>/<file stem>.
    public static func defaultRunDirectory(for recipe: URL) -> URL {
        URL(fileURLWithPath: "Checkpoints")
            .appendingPathComponent(recipe.deletingLastPathComponent().lastPathComponent)
            .appendingPathComponent(recipe.deletingPathExtension().lastPathComponent)
    }

    /// Resolves the recipe (file + overrides), opens the run folder and reconciles it with a saved
    /// recipe when resuming: keys that change what is trained (model, data, optimiser) must match the
    /// saved resolved recipe; bookkeeping keys such as `train.steps` may change.
    public static func prepare<R: RecipeSchema>(_ type: R.Type, recipe url: URL, overrides: [String],
                                                runDirectory: URL?, mode: ResumeMode) throws -> PreparedRun<R> {
        let tree = try RecipeLoader.load(url, overrides: overrides)
        let (recipe, resolved) = try RecipeValidator.resolve(tree, as: R.self, source: url.path)
        let folder = runDirectory ?? defaultRunDirectory(for: url)
        let run = try RunDirectory(folder)
        let lock = try run.lockForWriting()  // held from here on: nobody else writes this folder meanwhile
        if mode == .overwrite {
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name != ".lock" {
                try FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
        let recipeFile = folder.appendingPathComponent("recipe.yaml")
        let resuming = !run.steps().isEmpty
        if mode == .required && !resuming { throw RecipeError("--resume: no checkpoint to resume in \(folder.path)") }
        var notes: [String] = []
        if resuming, let savedText = try? String(contentsOf: recipeFile, encoding: .utf8) {
            let saved = try parseYAML(savedText, source: recipeFile.path)
            // A key added to the schema after the run was saved takes its default, which keeps the old
            // behaviour, so a run saved without it still resumes. (A saved key the schema no longer
            // knows leaves the tree as it was, and shows up below as a change.)
            let savedResolved = (try? RecipeValidator.resolve(saved, as: R.self, source: recipeFile.path).resolved) ?? saved
            let before = flatten(savedResolved), after = flatten(resolved)
            let changed = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
            let forbidden = changed.filter { !TrainSection.resumableChanges.contains($0) }
            guard forbidden.isEmpty else {
                let lines = forbidden.prefix(10).map { "\($0): saved \(before[$0]?.description ?? "absent"), now \(after[$0]?.description ?? "absent")" }
                throw RecipeError("\(folder.path) holds a run with a different recipe; resuming would mix them:\n  " +
                                  lines.joined(separator: "\n  ") + "\nuse --overwrite to start over, or --run-dir for a separate run")
            }
            notes = changed.map { "resuming with \($0) changed: \(before[$0]?.description ?? "absent") -> \(after[$0]?.description ?? "absent")" }
        }
        try run.writeFile("recipe.yaml", Data(try resolved.yaml().utf8))
        return PreparedRun(recipe: recipe, resolved: resolved, run: run, resuming: resuming, lock: lock, notes: notes)
    }

    /// Dotted path → leaf value.
    static func flatten(_ value: RecipeValue, prefix: String = "") -> [String: RecipeValue] {
        guard case .map(let m) = value else { return [prefix: value] }
        var out: [String: RecipeValue] = [:]
        for (k, v) in m { out.merge(flatten(v, prefix: prefix.isEmpty ? k : "\(prefix).\(k)")) { $1 } }
        return out
    }
}
