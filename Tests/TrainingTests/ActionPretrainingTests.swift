import Autograd
import Checkpoint
import Episodes
import Foundation
import Models
import TestSupport
import XCTest
@testable import Training

/// Stage 1 end to end on real (tiny) Meta-World demonstrations and a tiny stage-0 VLM trained here.
final class ActionPretrainingTests: XCTestCase {
    struct Fixture {
        let recipe: URL
        let demos: URL
    }

    static let fixture: Result<Fixture, Error> = Result {
        let dir = try TemporaryFolder.forProcess("stage1")
        let demos = dir.appendingPathComponent("demos"), shapes = dir.appendingPathComponent("shapes.hdf5")
        try TinyFixtures.demonstrations("reach-v3,push-v3", perTask: 3, into: demos)
        try TinyFixtures.shapes(into: shapes, train: 128)
        let vlmRecipe = dir.appendingPathComponent("vlm.yaml"), vlmRun = dir.appendingPathComponent("vlm")
        try TinyFixtures.vlmRecipe(shapes: shapes).write(to: vlmRecipe, atomically: true, encoding: .utf8)
        let prepared = try RunSetup.prepare(VLMRecipe.self, recipe: vlmRecipe, overrides: [], runDirectory: vlmRun, mode: .automatic)
        _ = try Trainer(train: prepared.recipe.train, task: try VLMTask(prepared.recipe, run: prepared.run), run: prepared.run,
                        lock: prepared.lock, log: { _ in }).run()
        let recipe = dir.appendingPathComponent("stage1.yaml")
        try TinyFixtures.stage1Recipe(vlm: vlmRun, demos: demos, motionFraction: 0.5).write(to: recipe, atomically: true, encoding: .utf8)
        return Fixture(recipe: recipe, demos: demos)
    }

    /// Trains (or resumes) the 6-step run in `folder`, with the recipe `overrides`, stopped by a SIGTERM after `stopAt` steps if given.
    func train(in folder: URL, overrides: [String] = [], stopAt: Int? = nil,
               before: ((ActionPretrainingTask) -> Void)? = nil) throws -> (ActionPretrainingTask, [Double]) {
        let prepared = try RunSetup.prepare(ActionPretrainingRecipe.self, recipe: try Self.fixture.get().recipe, overrides: overrides,
                                            runDirectory: folder, mode: .automatic)
        let task = try ActionPretrainingTask(prepared.recipe, run: prepared.run)
        before?(task)
        let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock, log: { _ in })
        if let stopAt { trainer.addEvaluationHook(every: stopAt, name: "stop") { _ in raise(SIGTERM); return [:] } }
        _ = try trainer.run()
        return (task, try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl")).compactMap { $0.values["loss"] })
    }

    func testFrozenVLMStaysBitForBitOnlyQueryRowsMoveAndResumeIsExact() throws {
        let root = try temporaryFolder("s1run")
        var initial: [String: [Float]] = [:]
        let (task, straight) = try train(in: root.appendingPathComponent("straight")) { task in
            for (name, p) in task.vla.namedParameters() { initial[name] = p.toArray() }
        }
        XCTAssertEqual(straight.count, 6)
        XCTAssertTrue(straight.allSatisfy(\.isFinite))
        let queryRows = Set(task.prompt.queryIds.map(Int.init))
        for (name, p) in task.vla.namedParameters() {
            let now = p.toArray(), before = initial[name]!
            if name.hasSuffix("embed_tokens.weight") {
                let c = p.shape[1]
                for row in 0..<p.shape[0] {
                    let same = now[(row * c)..<((row + 1) * c)] == before[(row * c)..<((row + 1) * c)]
                    XCTAssertEqual(same, !queryRows.contains(row), "\(name) row \(row)")
                }
            } else if name.hasPrefix("vlm.") && !name.contains(".lora_") {
                XCTAssertEqual(now, before, "\(name) is frozen but changed")
            } else if name.contains(".lora_B.") || name.hasPrefix("action_model.layers") {
                XCTAssertNotEqual(now, before, "\(name) should train")
            }
        }

        let interrupted = root.appendingPathComponent("interrupted")
        XCTAssertEqual(try train(in: interrupted, stopAt: 3).1.count, 3)
        XCTAssertEqual(try train(in: interrupted).1, straight, "same losses step for step after a resume")
    }

    /// train.ema_decay: each checkpoint holds the trainable weights' moving average (and nothing
    /// frozen), a resumed run ends with the same average as an uninterrupted one, serving and export
    /// act with it unless asked for the raw weights, and a checkpoint that lost it cannot resume.
    func testMovingAverageIsCheckpointedResumedExactlyAndServedByDefault() throws {
        let root = try temporaryFolder("s1ema")
        let ema = ["train.ema_decay=0.5"]
        let straight = root.appendingPathComponent("straight")
        let (task, _) = try train(in: straight, overrides: ema)
        let step = straight.appendingPathComponent("last")
        let averaged = try Safetensors.load(step.appendingPathComponent(RunDirectory.emaFile)).tensors
        let trained = try Safetensors.load(step.appendingPathComponent(RunDirectory.modelFile)).tensors
        XCTAssertEqual(Set(averaged.keys), Set(task.vla.trainableParameters().map(\.0)), "the trainable weights, nothing frozen")
        let moving = "action_model.layers.0.self_attn.q_proj.weight"
        XCTAssertNotNil(averaged[moving])
        XCTAssertNotEqual(averaged[moving]?.toArray(), trained[moving]?.toArray(), "6 updates with decay ≤ 0.5 lag the weights")
        let queryRows = Set(task.prompt.queryIds.map(Int.init))
        for (name, t) in averaged where name.hasSuffix("embed_tokens.weight") {
            let (a, w, c) = (t.toArray(), trained[name]!.toArray(), t.shape[1])
            for row in 0..<t.shape[0] {
                XCTAssertEqual(a[(row * c)..<((row + 1) * c)] == w[(row * c)..<((row + 1) * c)], !queryRows.contains(row), "\(name) row \(row)")
            }
        }

        let interrupted = root.appendingPathComponent("interrupted")
        _ = try train(in: interrupted, overrides: ema, stopAt: 3)
        _ = try train(in: interrupted, overrides: ema)
        let resumed = try Safetensors.load(interrupted.appendingPathComponent("last").appendingPathComponent(RunDirectory.emaFile))
        XCTAssertEqual(resumed.metadata["updates"], "6")
        for (name, t) in averaged { XCTAssertTrue(resumed.tensors[name]?.toArray() == t.toArray(), "\(name) differs after a resume") }

        let policy = try ActionPolicy(contentsOf: straight), raw = try ActionPolicy(contentsOf: straight, averaged: false)
        XCTAssertEqual(policy.source.lastPathComponent, RunDirectory.emaFile)
        XCTAssertEqual(raw.source.lastPathComponent, RunDirectory.modelFile)
        let served = Dictionary(uniqueKeysWithValues: policy.vla.namedParameters().map { ($0.0, $0.1.toArray()) })
        for (name, t) in trained { XCTAssertEqual(served[name], (averaged[name] ?? t).toArray(), name) }
        let dataset = try EpisodeDataset(files: [try Self.fixture.get().demos.appendingPathComponent("reach-v3.hdf5").path], layout: .metaworld)
        let sample = try dataset.sample(episode: 0, step: 5, horizon: 1)
        let mean = Array(repeating: Float(0), count: policy.horizon * policy.actionDim)
        func act(_ p: ActionPolicy) throws -> [Float] {
            try p.act(images: sample.images, proprio: sample.proprio, instruction: sample.instruction, noise: mean)
        }
        XCTAssertNotEqual(try act(policy), try act(raw))
        let bundle = root.appendingPathComponent("bundle")
        try policy.export(from: straight, to: bundle)
        XCTAssertEqual(try act(ActionPolicy(contentsOf: bundle)), try act(policy), "the bundle carries the averaged weights")

        let last = interrupted.appendingPathComponent("last")
        try FileManager.default.removeItem(at: last.appendingPathComponent(RunDirectory.emaFile))
        XCTAssertThrowsError(try train(in: interrupted, overrides: ema + ["train.steps=8"])) { error in
            XCTAssertTrue("\(error)".contains("train.ema_decay is set but the checkpoint has no ema.safetensors"), "\(error)")
        }
    }

    /// `vla probe`: the errors are those of the noise-free chunks of the right frames, the swap uses
    /// another episode's image, and the spread is the recorded chunks' own.
    func testImageSensitivityProbeMeasuresTheRightFrames() throws {
        let run = try temporaryFolder("s1probe")
        _ = try train(in: run)
        let policy = try ActionPolicy(contentsOf: run)
        let file = try Self.fixture.get().demos.appendingPathComponent("push-v3.hdf5").path
        let probe = try ImageSensitivity.probe(policy, file: file, step: 2, episodes: 3)
        let data = try EpisodeDataset(files: [file], layout: .metaworld)
        let frames = try (0..<3).map { try data.sample(episode: $0, step: 2, horizon: policy.horizon) }
        let own = try frames.map { try policy.meanAction(images: $0.images, proprio: $0.proprio, instruction: $0.instruction) }
        XCTAssertEqual(own[0], try policy.meanAction(images: frames[0].images, proprio: frames[0].proprio, instruction: frames[0].instruction),
                       "the noise-free chunk is deterministic")
        let swapped = try (0..<3).map { i in
            try policy.meanAction(images: frames[(i + 1) % 3].images, proprio: frames[i].proprio, instruction: frames[i].instruction)
        }
        var error = 0.0, swappedError = 0.0, change = 0.0, spread = 0.0
        // One instruction per Meta-World task: swapping it between episodes cannot change anything.
        let values = Double(3 * frames[0].actions.count)
        for i in 0..<3 {
            for j in frames[0].actions.indices {
                let mean = (frames[0].actions[j] + frames[1].actions[j] + frames[2].actions[j]) / 3
                error += Double(abs(own[i][j] - frames[i].actions[j])) / values
                swappedError += Double(abs(swapped[i][j] - frames[i].actions[j])) / values
                change += Double(abs(own[i][j] - swapped[i][j])) / values
                spread += Double(abs(frames[i].actions[j] - mean)) / values
            }
        }
        XCTAssertEqual(probe.episodes, 3)
        XCTAssertEqual(probe.error, error, accuracy: 1e-6)
        XCTAssertEqual(probe.swappedError, swappedError, accuracy: 1e-6)
        XCTAssertEqual(probe.swapChange, change, accuracy: 1e-6)
        XCTAssertEqual(probe.spread, spread, accuracy: 1e-6)
        XCTAssertEqual(probe.instructionChange, 0)
        XCTAssertGreaterThan(probe.spread, 0)
        XCTAssertThrowsError(try ImageSensitivity.probe(policy, file: file, step: 0, episodes: 1))

        // With an instruction per episode (as in the instruct scene), the instruction alone is swapped.
        let reworded = run.appendingPathComponent("reworded-push-v3.hdf5")
        let instructions = ["push the puck to the goal", "slide the puck over to the red dot", "move the puck onto the target"]
        _ = try PythonReference.run("Tests/TrainingTests/Interop/reword_demos.py",
                                    input: ["source": file, "target": reworded.path, "instructions": instructions])
        let byInstruction = try ImageSensitivity.probe(policy, file: reworded.path, step: 2, episodes: 3)
        let rewordedData = try EpisodeDataset(files: [reworded.path], layout: .metaworld)
        var instructionChange = 0.0
        for i in 0..<3 {
            XCTAssertEqual(try rewordedData.sample(episode: i, step: 2, horizon: policy.horizon).instruction, instructions[i])
            let other = try policy.meanAction(images: frames[i].images, proprio: frames[i].proprio, instruction: instructions[(i + 1) % 3])
            let own = try policy.meanAction(images: frames[i].images, proprio: frames[i].proprio, instruction: instructions[i])
            for j in own.indices { instructionChange += Double(abs(own[j] - other[j])) / values }
        }
        XCTAssertGreaterThan(instructionChange, 0, "the tiny policy's chunk depends on its instruction")
        XCTAssertEqual(byInstruction.instructionChange, instructionChange, accuracy: 1e-6)
    }

    /// `model.proprio_dims: [3]` (the gripper only): the expert reads that one column in training and
    /// serving, while the served observation keeps the dataset's whole proprio vector.
    func testProprioDimsPickTheColumnsTheExpertReads() throws {
        let run = try temporaryFolder("s1dims")
        let (task, _) = try train(in: run, overrides: ["model.proprio_dims=[3]", "train.steps=2"])
        XCTAssertEqual(task.vla.actionModel.proprioProjector?.fc1.weight.shape[1], 1)

        let policy = try ActionPolicy(contentsOf: run)
        XCTAssertEqual(policy.proprioDim, 4, "the observation schema is the dataset's")
        let dataset = try EpisodeDataset(files: [try Self.fixture.get().demos.appendingPathComponent("push-v3.hdf5").path], layout: .metaworld)
        let sample = try dataset.sample(episode: 0, step: 5, horizon: 1)
        let noise = Array(repeating: Float(0), count: policy.horizon * policy.actionDim)
        func act(_ proprio: [Float]) throws -> [Float] {
            try policy.act(images: sample.images, proprio: proprio, instruction: sample.instruction, noise: noise)
        }
        let a = try act(sample.proprio)
        var moved = sample.proprio
        moved[0] += 0.1; moved[2] -= 0.05
        XCTAssertEqual(try act(moved), a, "the end-effector position is not read")
        var gripper = sample.proprio
        gripper[3] = sample.proprio[3] > 0.5 ? 0 : 1
        XCTAssertNotEqual(try act(gripper), a, "the gripper is")

        var recipe = task.recipe
        let batch = Tensor((1...8).map(Float.init), shape: [2, 4])
        recipe.model.proprioDims = [3, 0]
        XCTAssertEqual(recipe.model.expertProprio(batch)?.toArray(), [4, 1, 8, 5], "columns 3 and 0 of each row")
        recipe.model.proprioDims = []
        XCTAssertEqual(recipe.model.expertProprio(batch)?.toArray(), batch.toArray())
        recipe.model.proprioDims = [4]
        XCTAssertThrowsError(try recipe.model.expertProprioDim(4)) { XCTAssertTrue("\($0)".contains("model.proprio_dims"), "\($0)") }
        for dims in [[1, 1], [-1]] {
            recipe.model.proprioDims = dims
            XCTAssertThrowsError(try recipe.validate()) { XCTAssertTrue("\($0)".contains("model.proprio_dims"), "\($0)") }
        }
        recipe.model.proprioDims = [3]
        recipe.model.useProprio = false
        XCTAssertThrowsError(try recipe.validate()) { XCTAssertTrue("\($0)".contains("needs use_proprio"), "\($0)") }
        recipe.model.proprioDims = []
        XCTAssertEqual(try recipe.model.expertProprioDim(4), 0)
        XCTAssertNil(recipe.model.expertProprio(batch))
    }

    /// `model.auxiliary_weight` with the simulator's object and goal positions as targets: the loss is
    /// logged and trains the head, the run serves from images alone (no env_state in the observation),
    /// and the recipe refuses half-configured auxiliary losses.
    func testAuxiliaryStateLossTrainsAndServingNeedsNoState() throws {
        let run = try temporaryFolder("s1aux")
        let overrides = ["model.vision_spatial_readout=true", "model.auxiliary_weight=2.0", "data.auxiliary_key=env_state",
                         "data.auxiliary_dims=[4, 5, 6, 36, 37, 38]", "data.augment_shift=2", "train.steps=3"]
        let (task, _) = try train(in: run, overrides: overrides)
        XCTAssertEqual(task.vla.actionModel.auxiliaryHead?.weight.shape, [6, task.vla.actionModel.config.backbone.hiddenSize])
        let head = try XCTUnwrap(task.vla.actionModel.auxiliaryHead).weight.toArray()
        let logged = try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).compactMap { $0.values["auxiliary_loss"] }
        XCTAssertFalse(logged.isEmpty, "auxiliary_loss is logged")
        XCTAssertTrue(logged.allSatisfy { $0.isFinite && $0 > 0 })

        let policy = try ActionPolicy(contentsOf: run)
        XCTAssertEqual(policy.vla.actionModel.auxiliaryHead?.weight.toArray(), head, "the trained head is in the checkpoint")
        XCTAssertEqual(policy.proprioDim, 4, "the observation is images, proprio and text: no simulator state")
        XCTAssertEqual(policy.recipe.data.episodeLayout.auxiliaryKey, "env_state")
        XCTAssertNil(policy.recipe.data.observationLayout.auxiliaryKey, "vla act and vla probe read frames without the targets")
        let sample = try EpisodeDataset(files: [try Self.fixture.get().demos.appendingPathComponent("push-v3.hdf5").path], layout: .metaworld)
            .sample(episode: 0, step: 2, horizon: 1)
        let actions = try policy.act(images: sample.images, proprio: sample.proprio, instruction: sample.instruction,
                                     noise: Array(repeating: 0, count: policy.horizon * policy.actionDim))
        XCTAssertTrue(actions.allSatisfy(\.isFinite))

        // `vla probe`'s auxiliary columns: the head's prediction in environment units (un-standardised
        // with the training episodes' moments, recomputed here by hand) against the recorded columns.
        let columns = [4, 5, 6, 36, 37, 38]
        let training = try EpisodeDataset(files: policy.recipe.data.resolvedFiles(), layout: policy.recipe.data.episodeLayout, split: "train")
        let rows = try training.allAuxiliary(), width = training.auxiliaryDim
        let count = Double(rows.count / width)
        let mean = columns.map { c in stride(from: c, to: rows.count, by: width).map { Double(rows[$0]) }.reduce(0, +) / count }
        let std = columns.indices.map { k in
            (stride(from: columns[k], to: rows.count, by: width).map { pow(Double(rows[$0]) - mean[k], 2) }.reduce(0, +) / count).squareRoot()
        }
        let moments = try XCTUnwrap(try ImageSensitivity.auxiliaryMoments(policy))
        for k in columns.indices {
            XCTAssertEqual(Double(moments.mean[k]), mean[k], accuracy: 1e-5)
            XCTAssertEqual(Double(moments.std[k]), std[k] > 1e-6 ? std[k] : 1, accuracy: 1e-5)
        }
        let file = try Self.fixture.get().demos.appendingPathComponent("push-v3.hdf5").path
        let probe = try ImageSensitivity.probe(policy, file: file, step: 2, episodes: 3, auxiliaryMoments: moments)
        let withTargets = try EpisodeDataset(files: [file], layout: policy.recipe.data.episodeLayout)
        var error = 0.0
        for e in 0..<3 {
            let s = try withTargets.sample(episode: e, step: 2, horizon: policy.horizon)
            let z = try XCTUnwrap(try policy.auxiliary(images: s.images, proprio: s.proprio, instruction: s.instruction))
            for k in columns.indices { error += abs((Double(z[k]) * std[k] + mean[k]) - Double(s.auxiliary[columns[k]])) / Double(3 * columns.count) }
        }
        XCTAssertEqual(withTargets.auxiliaryDim, width)
        XCTAssertEqual(try XCTUnwrap(probe.auxiliaryError), error, accuracy: 1e-4)
        let perColumn = try XCTUnwrap(probe.auxiliaryColumnErrors)
        XCTAssertEqual(perColumn.count, columns.count)
        XCTAssertEqual(perColumn.reduce(0, +) / Double(columns.count), error, accuracy: 1e-4, "the columns' errors average to the whole")
        XCTAssertEqual(try XCTUnwrap(probe.auxiliaryColumnSpreads).reduce(0, +) / Double(columns.count), try XCTUnwrap(probe.auxiliarySpread),
                       accuracy: 1e-6)
        XCTAssertGreaterThan(try XCTUnwrap(probe.auxiliarySpread), 0)
        XCTAssertEqual(probe.auxiliaryInstructionChange, 0, "one instruction for every push episode")
        XCTAssertNil(try ImageSensitivity.probe(policy, file: file, step: 2, episodes: 3).auxiliaryError, "no moments, no auxiliary columns")

        var recipe = task.recipe
        recipe.model.visionSpatialReadout = false
        XCTAssertThrowsError(try recipe.validate()) { XCTAssertTrue("\($0)".contains("model.vision_spatial_readout: true"), "\($0)") }
        recipe.model.visionSpatialReadout = true
        recipe.model.auxiliaryWeight = 0
        XCTAssertThrowsError(try recipe.validate()) { XCTAssertTrue("\($0)".contains("data.auxiliary_dims: only an auxiliary loss reads them"), "\($0)") }
        recipe.data.auxiliaryKey = ""
        XCTAssertThrowsError(try recipe.validate()) { XCTAssertTrue("\($0)".contains("give both"), "\($0)") }
    }

    /// `vla eval --vqa` of a stage-1 run answers through the whole VLA (adapters on). While the action
    /// LoRA is still a no-op (B = 0, one step at a negligible learning rate) it must score exactly as
    /// the stage-0 VLM does through its own generation path.
    func testStage1VQAScoresAsTheStage0VLMWhileTheAdapterIsANoOp() throws {
        let run = try temporaryFolder("s1vqa")
        _ = try train(in: run, overrides: ["train.steps=1", "train.learning_rate=1e-20"])
        let stage1 = try VQAEvaluation.run(runFolder: run, split: "test", limit: 12)
        let stage0Run = try Self.fixture.get().recipe.deletingLastPathComponent().appendingPathComponent("vlm")
        let stage0 = try VQAEvaluation.run(runFolder: stage0Run, split: "test", limit: 12)
        XCTAssertEqual(stage1.perType.values.map(\.total).reduce(0, +), 12)
        XCTAssertEqual(stage1.answers.count, 12)
        XCTAssertFalse(stage1.answers.allSatisfy(\.isEmpty), "the model says something")
        XCTAssertEqual(stage1, stage0, "the same answers, word for word")
    }

    /// `data.image_keys: [agentview_rgb, side_rgb]`: the expert reads both views (the VLM the
    /// first), the run records the extra camera for clients, a policy wants both views and acts on
    /// the second, and the bundle serves the same.
    func testASecondCameraViewIsTrainedOnServedAndExported() throws {
        let root = try temporaryFolder("s1views")
        let demos = root.appendingPathComponent("demos")
        try TinyFixtures.demonstrations("reach-v3", perTask: 3, into: demos, extraCameras: ["side"])
        let run = root.appendingPathComponent("run")
        let (task, losses) = try train(in: run, overrides: ["data.files=['\(demos.path)/*-v3.hdf5']", "data.image_keys=[agentview_rgb, side_rgb]",
                                                            "train.steps=2"])
        XCTAssertEqual(task.vla.actionModel.config.cameras, 2)
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        let observation = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("observation.json"))) as? [String: Any]
        XCTAssertEqual(observation?["extra_cameras"] as? [String], ["side"])

        let policy = try ActionPolicy(contentsOf: run)
        XCTAssertEqual(policy.observationImageKeys, ["observation/image", "observation/side_image"])
        let dataset = try EpisodeDataset(files: [demos.appendingPathComponent("reach-v3.hdf5").path], layout: policy.recipe.data.episodeLayout)
        let sample = try dataset.sample(episode: 0, step: 5, horizon: 1)
        XCTAssertEqual(sample.images.count, 2)
        XCTAssertNotEqual(sample.images[0], sample.images[1], "the side view is another picture")
        let noise = Array(repeating: Float(0), count: policy.horizon * policy.actionDim)
        let both = try policy.act(images: sample.images, proprio: sample.proprio, instruction: sample.instruction, noise: noise)
        let otherSide = try policy.act(images: [sample.images[0], sample.images[1].map { 255 - $0 }], proprio: sample.proprio,
                                       instruction: sample.instruction, noise: noise)
        XCTAssertNotEqual(both, otherSide, "the second view reaches the actions")
        XCTAssertThrowsError(try policy.act(images: [sample.images[0]], proprio: sample.proprio, instruction: sample.instruction, noise: noise)) {
            XCTAssertTrue("\($0)".contains("2 camera view(s)"), "\($0)")
        }

        let bundle = root.appendingPathComponent("bundle")
        try policy.export(from: run, to: bundle)
        let fromBundle = try ActionPolicy(contentsOf: bundle)
        XCTAssertEqual(try fromBundle.act(images: sample.images, proprio: sample.proprio, instruction: sample.instruction, noise: noise), both)
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: bundle.appendingPathComponent("schema.json"))) as? [String: Any]
        XCTAssertEqual((schema?["observation"] as? [String: Any])?["observation/side_image"] as? [Int], [16, 16, 3])
    }

    func testExportedBundleActsExactlyLikeTheRunAndRejectsTampering() throws {
        let root = try temporaryFolder("s1export")
        let run = root.appendingPathComponent("run")
        _ = try train(in: run)
        let fromRun = try ActionPolicy(contentsOf: run)
        let bundle = root.appendingPathComponent("bundle")
        try fromRun.export(from: run, to: bundle)
        let fromBundle = try ActionPolicy(contentsOf: bundle)

        let dataset = try EpisodeDataset(files: [try Self.fixture.get().demos.appendingPathComponent("reach-v3.hdf5").path], layout: .metaworld)
        let sample = try dataset.sample(episode: 0, step: 5, horizon: 1)
        func act(_ policy: ActionPolicy, seed: UInt64, noiseScale: Float = 1) throws -> [Float] {
            var rng = RNG(seed: seed)
            return try policy.act(images: sample.images, proprio: sample.proprio, instruction: sample.instruction, rng: &rng,
                                  noiseScale: noiseScale)
        }
        let a = try act(fromRun, seed: 3)
        XCTAssertEqual(a.count, fromRun.horizon * fromRun.actionDim)
        XCTAssertTrue(a.allSatisfy(\.isFinite))
        XCTAssertEqual(try act(fromBundle, seed: 3), a, "the bundle must reproduce the run's actions exactly")
        XCTAssertNotEqual(try act(fromBundle, seed: 4), a, "another noise seed gives another sample")
        let fromMean = try fromRun.act(images: sample.images, proprio: sample.proprio, instruction: sample.instruction,
                                       noise: Array(repeating: 0, count: a.count))
        XCTAssertEqual(try act(fromBundle, seed: 3, noiseScale: 0), fromMean, "noise scale 0 starts the flow at the noise's mean")
        XCTAssertEqual(try act(fromBundle, seed: 4, noiseScale: 0), fromMean, "so the seed no longer matters")
        XCTAssertNotEqual(fromMean, a)
        XCTAssertEqual(fromBundle.camera, "corner4")

        let weights = bundle.appendingPathComponent("model.safetensors")
        let handle = try FileHandle(forUpdating: weights)
        try handle.seek(toOffset: try handle.seekToEnd() - 4)
        try handle.write(contentsOf: Data([1, 2, 3, 4]))
        try handle.close()
        XCTAssertThrowsError(try ActionPolicy(contentsOf: bundle)) { XCTAssertTrue("\($0)".contains("SHA-256"), "\($0)") }
    }
}
