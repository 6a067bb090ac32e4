import Checkpoint
import Foundation
import TestSupport
import XCTest
@testable import Training

extension XCTestCase {
    /// Writes recipe files into a fresh folder, removed when the test ends, and returns it.
    func recipeFolder(_ files: [String: String], name: String = #function) throws -> URL {
        let dir = try temporaryFolder("recipes-\(name)")
        for (file, text) in files { try text.write(to: dir.appendingPathComponent(file), atomically: true, encoding: .utf8) }
        return dir
    }
}

func resolve(_ dir: URL, _ file: String, _ overrides: [String] = []) throws -> SequenceLMRecipe {
    let url = dir.appendingPathComponent(file)
    return try RecipeValidator.resolve(RecipeLoader.load(url, overrides: overrides), as: SequenceLMRecipe.self, source: url.path).recipe
}

func assertRecipeError(_ expected: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        XCTAssertTrue(error is RecipeError, "\(type(of: error)): \(error)", file: file, line: line)
        XCTAssertTrue("\(error)".contains(expected), "'\(error)' should contain '\(expected)'", file: file, line: line)
    }
}

final class RecipeTests: XCTestCase {
    /// Every recipe the repository ships resolves against its task's schema (no typo, no bad value).
    func testEveryShippedRecipeValidates() throws {
        let recipes = PythonReference.repoRoot.appendingPathComponent("Recipes")
        var checked = 0
        for folder in try FileManager.default.contentsOfDirectory(at: recipes, includingPropertiesForKeys: nil) {
            for url in try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil) where url.pathExtension == "yaml" {
                let tree = try RecipeLoader.load(url)
                guard case .map(let top) = tree, case .string(let task)? = top["task"] else { XCTFail("\(url.path): no task"); continue }
                let source = url.path
                switch task {
                case "sequence-lm": _ = try RecipeValidator.resolve(tree, as: SequenceLMRecipe.self, source: source)
                case "vlm": _ = try RecipeValidator.resolve(tree, as: VLMRecipe.self, source: source)
                case "pretrain-action": _ = try RecipeValidator.resolve(tree, as: ActionPretrainingRecipe.self, source: source)
                case "instruct-tune": _ = try RecipeValidator.resolve(tree, as: InstructTuningRecipe.self, source: source)
                default: XCTFail("\(url.path): task '\(task)' is not in this test")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 8)
    }

    func testExtendsChainMergesSectionsKeyByKey() throws {
        let dir = try recipeFolder([
            "base.yaml": "task: sequence-lm\ntrain:\n  steps: 50\n  batch_size: 8\n  trainable: ['model.*']\nmodel:\n  hidden_size: 16\n",
            "mid.yaml": "extends: base.yaml\ntrain:\n  steps: 70\n",
            "child.yaml": "extends: [mid.yaml]\ntrain:\n  learning_rate: 0.5\nmodel:\n  num_layers: 3\n",
        ])
        let r = try resolve(dir, "child.yaml")
        XCTAssertEqual(r.train.steps, 70)
        XCTAssertEqual(r.train.batchSize, 8)
        XCTAssertEqual(r.train.learningRate, 0.5)
        XCTAssertEqual(r.train.trainable, ["model.*"])
        XCTAssertEqual(r.model.hiddenSize, 16)
        XCTAssertEqual(r.model.numLayers, 3)
        XCTAssertEqual(r.train.warmupSteps, TrainSection().warmupSteps, "unset keys take the defaults")
    }

    func testExtendsErrors() throws {
        let dir = try recipeFolder(["a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n", "c.yaml": "extends: nope.yaml\n",
                                    "d.yaml": "extends: 3\n"])
        assertRecipeError("extends cycle") { _ = try resolve(dir, "a.yaml") }
        assertRecipeError("extends a missing file") { _ = try resolve(dir, "c.yaml") }
        assertRecipeError("extends must be a file name") { _ = try resolve(dir, "d.yaml") }
        assertRecipeError("recipe file not found") { _ = try resolve(dir, "missing.yaml") }
    }

    func testOverridesKeepYAMLTypes() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-lm\n"])
        let r = try resolve(dir, "r.yaml", ["train.steps=200", "train.learning_rate=3e-4", "train.trainable=[model.*, lm_head.*]",
                                            "train.schedule=constant", "train.clip_norm=2"])
        XCTAssertEqual(r.train.steps, 200)
        XCTAssertEqual(r.train.learningRate, 3e-4)
        XCTAssertEqual(r.train.trainable, ["model.*", "lm_head.*"])
        XCTAssertEqual(r.train.schedule, "constant")
        XCTAssertEqual(r.train.clipNorm, 2.0, "an integer where a number is expected is accepted")
        assertRecipeError("must look like key.path=value") { _ = try resolve(dir, "r.yaml", ["train.steps"]) }
        assertRecipeError("empty key") { _ = try resolve(dir, "r.yaml", ["train..steps=3"]) }
    }

    func testUnknownKeysSuggestTheClosestValidKey() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-lm\ntrain:\n  stpes: 10\nmodle:\n  hidden_size: 8\n"])
        assertRecipeError("train.stpes: unknown key (did you mean 'train.steps'?)") { _ = try resolve(dir, "r.yaml") }
        assertRecipeError("modle: unknown key (did you mean 'model'?)") { _ = try resolve(dir, "r.yaml") }
        assertRecipeError("2 problems") { _ = try resolve(dir, "r.yaml") }
        let plain = try recipeFolder(["p.yaml": "task: sequence-lm\n"])
        XCTAssertThrowsError(try resolve(plain, "p.yaml", ["train.zzzzzzzzzzzz=1"])) { error in
            XCTAssertTrue("\(error)".hasSuffix("train.zzzzzzzzzzzz: unknown key"), "no far-fetched suggestion: \(error)")
        }
    }

    func testWrongTypesNameTheKeyAndTheExpectedType() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-lm\n"])
        assertRecipeError("train.steps: expected an integer, got a string 'many'") { _ = try resolve(dir, "r.yaml", ["train.steps=many"]) }
        assertRecipeError("train.steps: expected an integer, got a number 2.5") { _ = try resolve(dir, "r.yaml", ["train.steps=2.5"]) }
        assertRecipeError("train.learning_rate: expected a number, got a boolean true") { _ = try resolve(dir, "r.yaml", ["train.learning_rate=true"]) }
        assertRecipeError("train.trainable[1]: expected a string, got an integer 3") { _ = try resolve(dir, "r.yaml", ["train.trainable=[a, 3]"]) }
        assertRecipeError("train.frozen: expected a list of strings, got a string") { _ = try resolve(dir, "r.yaml", ["train.frozen=abc"]) }
        assertRecipeError("model: expected a section (mapping), got an integer 5") { _ = try resolve(dir, "r.yaml", ["model=5"]) }
        assertRecipeError("not valid YAML") { _ = try resolve(dir, "r.yaml", ["train.steps=[1, 2"]) }
    }

    func testSemanticChecks() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-lm\n"])
        assertRecipeError("train.schedule: expected one of warmup_cosine, constant; got 'cosine'") { _ = try resolve(dir, "r.yaml", ["train.schedule=cosine"]) }
        assertRecipeError("train.steps: must be positive, got 0") { _ = try resolve(dir, "r.yaml", ["train.steps=0"]) }
        assertRecipeError("train.ema_decay: must be 0 (off) or within (0, 1), got 1.0") { _ = try resolve(dir, "r.yaml", ["train.ema_decay=1"]) }
        assertRecipeError("train.warmup_steps: must be within 0...train.steps (10)") { _ = try resolve(dir, "r.yaml", ["train.steps=10", "train.warmup_steps=20"]) }
        assertRecipeError("model: hidden_size must divide by num_heads") { _ = try resolve(dir, "r.yaml", ["model.hidden_size=30"]) }
    }

    func testResolvedRecipeRoundTripsThroughYAML() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-lm\ntrain:\n  steps: 77\n  learning_rate: 0.002\n  frozen: ['lm_head.*']\n"])
        let url = dir.appendingPathComponent("r.yaml")
        let (recipe, resolved) = try RecipeValidator.resolve(RecipeLoader.load(url), as: SequenceLMRecipe.self, source: url.path)
        let text = try resolved.yaml()
        XCTAssertTrue(text.contains("gradient_accumulation: 1"), "every default is written out:\n\(text)")
        let again = try RecipeValidator.resolve(parseYAML(text, source: "resolved"), as: SequenceLMRecipe.self, source: "resolved")
        XCTAssertEqual(again.resolved, resolved)
        XCTAssertEqual(again.recipe.train, recipe.train)
        XCTAssertEqual(again.recipe.model, recipe.model)
    }

    func testResumeRejectsRecipeChangesThatWouldMixRunsButAllowsLongerTraining() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-lm\ntrain:\n  steps: 4\n  save_every: 2\n  log_every: 2\n"])
        let runDir = dir.appendingPathComponent("run")
        let url = dir.appendingPathComponent("r.yaml")
        var prepared = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: [], runDirectory: runDir, mode: .automatic)
        XCTAssertFalse(prepared.resuming)
        _ = try Trainer(train: prepared.recipe.train, task: SequenceLMTask(prepared.recipe), run: prepared.run, lock: prepared.lock, log: { _ in }).run()

        assertRecipeError("model.hidden_size: saved 32, now 64") {
            _ = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: ["model.hidden_size=64"], runDirectory: runDir, mode: .automatic)
        }
        prepared = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: ["train.steps=6"], runDirectory: runDir, mode: .automatic)
        XCTAssertTrue(prepared.resuming)
        XCTAssertEqual(prepared.notes, ["resuming with train.steps changed: 4 -> 6"])
        XCTAssertTrue(try String(contentsOf: runDir.appendingPathComponent("recipe.yaml"), encoding: .utf8).contains("steps: 6"))
        prepared.lock.release()
        // A run saved by an older version, before a key existed, resumes: the key takes its default.
        let savedRecipe = runDir.appendingPathComponent("recipe.yaml")
        let savedLines = try String(contentsOf: savedRecipe, encoding: .utf8).split(separator: "\n")
        let withoutKey = savedLines.filter { !$0.contains("num_heads:") }
        XCTAssertEqual(withoutKey.count, savedLines.count - 1)
        try (withoutKey.joined(separator: "\n") + "\n").write(to: savedRecipe, atomically: true, encoding: .utf8)
        prepared = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: ["train.steps=6"], runDirectory: runDir, mode: .automatic)
        XCTAssertTrue(prepared.resuming)
        XCTAssertEqual(prepared.notes, [])
        // The folder is locked while a prepared run holds it.
        XCTAssertThrowsError(try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: [], runDirectory: runDir, mode: .automatic)) {
            XCTAssertTrue("\($0)".contains("is training in this run folder"), "\($0)")
        }
        prepared.lock.release()

        prepared = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: ["model.hidden_size=64"], runDirectory: runDir, mode: .overwrite)
        XCTAssertFalse(prepared.resuming)
        XCTAssertEqual(prepared.run.steps(), [], "overwrite cleared the old checkpoints")
        prepared.lock.release()
        assertRecipeError("no checkpoint to resume") {
            _ = try RunSetup.prepare(SequenceLMRecipe.self, recipe: url, overrides: [], runDirectory: dir.appendingPathComponent("empty"), mode: .required)
        }
    }

    func testUnknownTaskSuggestsAKnownOne() throws {
        let dir = try recipeFolder(["r.yaml": "task: sequence-llm\n", "n.yaml": "train:\n  steps: 3\n"])
        assertRecipeError("unknown task 'sequence-llm' (did you mean 'sequence-lm'?)") {
            _ = try TaskRegistry.train(recipe: dir.appendingPathComponent("r.yaml"), overrides: [], runDirectory: dir, mode: .automatic, command: "test")
        }
        assertRecipeError("missing 'task:'") {
            _ = try TaskRegistry.train(recipe: dir.appendingPathComponent("n.yaml"), overrides: [], runDirectory: dir, mode: .automatic, command: "test")
        }
    }
}
