import Episodes
import Foundation
import TestSupport
import Training
import XCTest
@testable import Serving

/// A trained stage-1 model behind the server (tiny: a one-layer VLM and expert on 16 px demos).
final class ModelPolicyTests: XCTestCase {
    func trainedRun() throws -> (run: URL, demos: URL) {
        let dir = try temporaryFolder("modelpolicy")
        let demos = dir.appendingPathComponent("demos"), shapes = dir.appendingPathComponent("shapes.hdf5")
        try TinyFixtures.demonstrations("reach-v3", perTask: 2, into: demos)
        try TinyFixtures.shapes(into: shapes)
        let vlmRecipe = dir.appendingPathComponent("vlm.yaml"), vlm = dir.appendingPathComponent("vlm")
        try TinyFixtures.vlmRecipe(shapes: shapes).write(to: vlmRecipe, atomically: true, encoding: .utf8)
        let stage0 = try RunSetup.prepare(VLMRecipe.self, recipe: vlmRecipe, overrides: [], runDirectory: vlm, mode: .automatic)
        _ = try Trainer(train: stage0.recipe.train, task: try VLMTask(stage0.recipe, run: stage0.run), run: stage0.run,
                        lock: stage0.lock, log: { _ in }).run()
        let recipe = dir.appendingPathComponent("stage1.yaml"), run = dir.appendingPathComponent("stage1")
        try TinyFixtures.stage1Recipe(vlm: vlm, demos: demos).write(to: recipe, atomically: true, encoding: .utf8)
        let stage1 = try RunSetup.prepare(ActionPretrainingRecipe.self, recipe: recipe, overrides: [], runDirectory: run, mode: .automatic)
        _ = try Trainer(train: stage1.recipe.train, task: try ActionPretrainingTask(stage1.recipe, run: stage1.run), run: stage1.run,
                        lock: stage1.lock, log: { _ in }).run()
        return (run, demos)
    }

    /// A request's actions follow from the seed and its observation only, not from the requests served
    /// before it: evaluation workers sharing one server reproduce their episodes on every run.
    func testActionsFollowFromTheSeedAndTheObservationOnly() throws {
        let (run, demos) = try trainedRun()
        let dataset = try EpisodeDataset(files: [demos.appendingPathComponent("reach-v3.hdf5").path],
                                         layout: try ActionPolicy(contentsOf: run).recipe.data.observationLayout)
        let observations = try [0, 1].map { e in
            let sample = try dataset.sample(episode: e, step: 3, horizon: 1)
            return Observation(images: sample.images, state: sample.proprio, prompt: sample.instruction)
        }
        let policy = try ModelPolicy(contentsOf: run, seed: 1)
        let first = try policy.infer(observations[0]).actions
        let other = try policy.infer(observations[1]).actions
        XCTAssertNotEqual(other, first)
        XCTAssertEqual(try policy.infer(observations[0]).actions, first, "the same observation after another one")
        XCTAssertEqual(try ModelPolicy(contentsOf: run, seed: 1).infer(observations[0]).actions, first, "a fresh server")
        XCTAssertNotEqual(try ModelPolicy(contentsOf: run, seed: 2).infer(observations[0]).actions, first, "the seed draws the noise")
    }

    /// `vla serve --think-every N` replaces the recipe's `inference.think_every`; a stage-1 run, which
    /// has no recipe value, regenerates on every request unless told otherwise.
    func testThinkEveryOverridesTheRecipe() throws {
        let (run, _) = try trainedRun()
        XCTAssertEqual(try ModelPolicy(contentsOf: run, seed: 1).thoughts.every, 1)
        XCTAssertEqual(try ModelPolicy(contentsOf: run, seed: 1, thinkEvery: 7).thoughts.every, 7)
    }
}
