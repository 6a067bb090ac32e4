import Autograd
import Checkpoint
import Episodes
import Foundation
import Models
import TestSupport
import XCTest
@testable import Training

/// Stage 2 end to end on tiny Meta-World and Meta-World-Instruct demonstrations with VLA-IT
/// annotations, from a tiny stage-0 VLM and stage-1 run trained here. The stage-1 expert reads two
/// camera views, as the benchmark's does.
final class InstructTuningTests: XCTestCase {
    struct Fixture {
        let dir: URL
        let stage1: URL
        let demos: URL
        let shapes: URL
    }

    static let fixture: Result<Fixture, Error> = Result {
        let dir = try TemporaryFolder.forProcess("stage2")
        let demos = dir.appendingPathComponent("demos"), shapes = dir.appendingPathComponent("shapes.hdf5")
        try TinyFixtures.demonstrations("drawer-close-v3", perTask: 2, into: demos, extraCameras: ["side"])
        try TinyFixtures.demonstrations("instruct-place-v3", perTask: 3, into: demos, extraCameras: ["side"])
        try PythonReference.runScript("Datasets/metaworld/annotate.py", arguments: [demos.path])
        try TinyFixtures.shapes(into: shapes)
        let vlmRecipe = dir.appendingPathComponent("vlm.yaml"), vlmRun = dir.appendingPathComponent("vlm")
        try TinyFixtures.vlmRecipe(shapes: shapes).write(to: vlmRecipe, atomically: true, encoding: .utf8)
        let vlm = try RunSetup.prepare(VLMRecipe.self, recipe: vlmRecipe, overrides: [], runDirectory: vlmRun, mode: .automatic)
        _ = try Trainer(train: vlm.recipe.train, task: try VLMTask(vlm.recipe, run: vlm.run), run: vlm.run, lock: vlm.lock, log: { _ in }).run()
        let stage1Recipe = dir.appendingPathComponent("stage1.yaml"), stage1Run = dir.appendingPathComponent("stage1")
        try """
        task: pretrain-action
        model: {vlm: '\(vlmRun.path)', action_queries: 4, hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32,
                vision_patch_size: 8, vision_hidden_size: 8, vision_layers: 1, vision_heads: 2, vision_intermediate_size: 16,
                vision_stem_channels: 4, vision_spatial_readout: true}
        lora: {rank: 2}
        flow: {samples: 2}
        data: {files: ['\(demos.path)/*-v3.hdf5'], image_keys: [agentview_rgb, side_rgb], horizon: 4, repeats: {instruct-place-v3.hdf5: 2}}
        train: {steps: 4, batch_size: 4, learning_rate: 1.0e-2, save_every: 4, log_every: 1}
        """.write(to: stage1Recipe, atomically: true, encoding: .utf8)
        let stage1 = try RunSetup.prepare(ActionPretrainingRecipe.self, recipe: stage1Recipe, overrides: [], runDirectory: stage1Run, mode: .automatic)
        _ = try Trainer(train: stage1.recipe.train, task: try ActionPretrainingTask(stage1.recipe, run: stage1.run), run: stage1.run,
                        lock: stage1.lock, log: { _ in }).run()
        return Fixture(dir: dir, stage1: stage1Run, demos: demos, shapes: shapes)
    }

    /// A stage-2 recipe over the fixture; `fullFinetune` makes it the ablation (the whole LM trains).
    func recipe(_ name: String, steps: Int = 6, fullFinetune: Bool = false) throws -> URL {
        let f = try Self.fixture.get()
        let url = f.dir.appendingPathComponent("\(name).yaml")
        try """
        task: instruct-tune
        model: {stage1: '\(f.stage1.path)', full_finetune: \(fullFinetune)}
        lora: {rank: 2, dropout: 0.1}
        router: {width: 8, depth: 3, dropout: 0.1}
        multimodal: {files: ['\(f.shapes.path)'], batch_size: 2}
        inference: {think_every: 3, max_response_tokens: 12}
        flow: {samples: 2}
        data: {files: ['\(f.demos.path)/*-v3.hdf5'], horizon: 4}
        train: {steps: \(steps), batch_size: 4, learning_rate: 1.0e-2, save_every: 3, log_every: 1\(fullFinetune ? ", trainable: ['vlm.language_model.*']" : "")}
        """.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func train(_ recipe: URL, in folder: URL, overrides: [String] = [], stopAt: Int? = nil,
               before: ((InstructTuningTask) -> Void)? = nil) throws -> (InstructTuningTask, [(step: Int, values: [String: Double])]) {
        let prepared = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: overrides, runDirectory: folder, mode: .automatic)
        let task = try InstructTuningTask(prepared.recipe, run: prepared.run)
        before?(task)
        let trainer = Trainer(train: prepared.recipe.train, task: task, run: prepared.run, lock: prepared.lock, log: { _ in })
        if let stopAt { trainer.addEvaluationHook(every: stopAt, name: "stop") { _ in raise(SIGTERM); return [:] } }
        _ = try trainer.run()
        return (task, try MetricsLog.read(folder.appendingPathComponent("metrics.jsonl")))
    }

    /// The VLM base and the action expert do not move by a bit; the language LoRA (from B = 0), the
    /// action LoRA, the router and only the query rows do; the router and multimodal steps are
    /// logged; and a run stopped halfway resumes to exactly the uninterrupted run.
    func testFrozenPartsStayBitForBitAdaptersAndRouterTrainAndResumeIsExact() throws {
        let root = try temporaryFolder("s2run")
        let url = try recipe("stage2")
        var initial: [String: [Float]] = [:]
        let (task, records) = try train(url, in: root.appendingPathComponent("straight")) { task in
            for (name, p) in task.vla.namedParameters() { initial[name] = p.toArray() }
        }
        let queryRows = Set(task.stage1.prompt.queryIds.map(Int.init)), unseenRows = Set(task.unseenTokens.map(Int.init))
        var moved: Set<String> = [], movedUnseen = 0
        for (name, p) in task.vla.namedParameters() {
            let now = p.toArray(), before = initial[name]!
            if name.hasSuffix("embed_tokens.weight") {
                let c = p.shape[1]
                for row in 0..<p.shape[0] {
                    let range = (row * c)..<((row + 1) * c)
                    let same = Array(now[range]) == Array(before[range])
                    if unseenRows.contains(row) {
                        movedUnseen += same ? 0 : 1
                    } else {
                        XCTAssertEqual(same, !queryRows.contains(row), "\(name) row \(row)")
                    }
                }
            } else if name.hasPrefix("action_model.") || (name.hasPrefix("vlm.") && !name.contains(".lora_")) {
                XCTAssertEqual(now, before, "\(name) is frozen but changed")
            } else if now != before {
                moved.insert(name)
            }
        }
        XCTAssertTrue(moved.contains("vlm.language_model.model.layers.0.self_attn.q_proj.lora_B.language.weight"), "the language LoRA trains from B = 0")
        XCTAssertTrue(moved.contains("vlm.language_model.model.layers.0.mlp.down_proj.lora_A.action.weight"), "the action LoRA trains")
        XCTAssertTrue(moved.contains { $0.hasPrefix("scale_head.") }, "the router trains")
        XCTAssertEqual(initial["vlm.language_model.model.layers.0.self_attn.q_proj.lora_B.language.weight"]!.allSatisfy { $0 == 0 }, true)
        XCTAssertGreaterThan(movedUnseen, 0, "rows of tokens the VLM never read train")

        let losses: [Double] = records.compactMap { $0.values["loss"] }
        XCTAssertEqual(losses.count, 6)
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        let last = records.last { $0.values["loss"] != nil }!.values
        for role in ["template", "image", "instruction", "query"] {
            let (language, action) = (last["router/\(role)/language"], last["router/\(role)/action"])
            XCTAssertNotNil(language, "router/\(role)/language logged")
            XCTAssertEqual((language ?? 0) + (action ?? 0), 1, accuracy: 1e-5, "λ of \(role) tokens sums to 1")
        }
        XCTAssertNotNil(last["aux/loss"], "the multimodal batch's loss is logged")
        XCTAssertEqual(["plain", "motion", "dialogue", "context", "rewriting"].compactMap { last["mix/\($0)"] }.reduce(0, +), 1, accuracy: 1e-9)

        _ = try train(url, in: root.appendingPathComponent("resumed"), stopAt: 3)
        let (_, resumed) = try train(url, in: root.appendingPathComponent("resumed"))
        XCTAssertEqual(resumed.compactMap { $0.values["loss"] } as [Double], losses, "resumed run must repeat the uninterrupted one")
    }

    /// The VLM's corpus (shapes questions, all lower case) never has "P" of the responses' "Put …":
    /// that row trains with the query rows; the tokens of a shapes question do not; and
    /// `model.train_unseen_tokens: false` leaves the query rows alone.
    func testRowsOfTokensTheVLMNeverReadTrainUnlessTurnedOff() throws {
        let url = try recipe("stage2-unseen")
        let root = try temporaryFolder("s2unseen")
        func task(_ overrides: [String], _ name: String) throws -> InstructTuningTask {
            let prepared = try RunSetup.prepare(InstructTuningRecipe.self, recipe: url, overrides: overrides,
                                                runDirectory: root.appendingPathComponent(name), mode: .automatic)
            return try InstructTuningTask(prepared.recipe, run: prepared.run)
        }
        let on = try task([], "on")
        let tokenizer = on.stage1.prompt.tokenizer
        let capitalP = try XCTUnwrap(tokenizer.encode("Put").first)
        XCTAssertEqual(tokenizer.decode([capitalP]), "P")
        XCTAssertTrue(on.unseenTokens.contains(capitalP), "\(on.unseenTokens.map { tokenizer.decode([$0]) })")
        let read = tokenizer.encode("what shape is the red object?")
        XCTAssertTrue(Set(read).isDisjoint(with: on.unseenTokens), "a shapes question's tokens were read")
        let rows = try XCTUnwrap(on.vla.vlm.languageModel.model.embedTokens.weight.trainableRows)
        XCTAssertEqual(Set(rows.indices.filter { rows[$0] }.map(Int32.init)), Set(on.stage1.prompt.queryIds + on.unseenTokens))

        let off = try task(["model.train_unseen_tokens=false"], "off")
        XCTAssertEqual(off.unseenTokens, [])
        let offRows = try XCTUnwrap(off.vla.vlm.languageModel.model.embedTokens.weight.trainableRows)
        XCTAssertEqual(Set(offRows.indices.filter { offRows[$0] }.map(Int32.init)), Set(off.stage1.prompt.queryIds))
    }

    /// `router.warmup_steps`: until then every token gets λ = 1/2 and the scale head does not move,
    /// while the language LoRA already trains from B = 0.
    func testRouterWarmupHoldsTheHeadAndGivesBothAdaptersHalf() throws {
        let root = try temporaryFolder("s2warm")
        var initial: [String: [Float]] = [:]
        let (task, records) = try train(try recipe("stage2"), in: root, overrides: ["router.warmup_steps=6"]) { task in
            for (name, p) in task.vla.namedParameters() { initial[name] = p.toArray() }
        }
        for (name, p) in task.vla.namedParameters() where name.hasPrefix("scale_head.") {
            XCTAssertEqual(p.toArray(), initial[name]!, "\(name) must not train during the warmup")
        }
        let languageB = "vlm.language_model.model.layers.0.self_attn.q_proj.lora_B.language.weight"
        XCTAssertNotEqual(task.vla.namedParameters().first { $0.0 == languageB }!.1.toArray(), initial[languageB]!)
        let logged = records.compactMap { $0.values["router/query/language"] }
        XCTAssertEqual(logged.count, 6)
        XCTAssertTrue(logged.allSatisfy { $0 == 0.5 }, "\(logged)")
    }

    /// A data file without any VLA-IT annotation beside annotated ones is named, so the header can warn
    /// that its tasks never train thinking (MT10 files regenerated without `annotate.py` did that).
    func testFilesWithoutAnnotationsAreNamed() throws {
        let f = try Self.fixture.get()
        let bare = f.dir.appendingPathComponent("bare-\(UUID().uuidString.prefix(8))")
        try TinyFixtures.demonstrations("reach-v3", perTask: 2, into: bare, extraCameras: ["side"])
        let recipe = try recipe("stage2-bare")
        let run = try temporaryFolder("s2bare")
        let annotated = f.demos.appendingPathComponent("instruct-place-v3.hdf5").path, unannotated = bare.appendingPathComponent("reach-v3.hdf5").path
        let prepared = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: ["data.files=['\(annotated)', '\(unannotated)']"],
                                            runDirectory: run, mode: .automatic)
        XCTAssertEqual(try InstructTuningTask(prepared.recipe, run: prepared.run).unannotatedFiles, [unannotated])
        let plainOnly = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: ["data.files=['\(annotated)']"],
                                             runDirectory: run.appendingPathComponent("annotated"), mode: .automatic)
        XCTAssertEqual(try InstructTuningTask(plainOnly.recipe, run: plainOnly.run).unannotatedFiles, [])
        // With no annotated file at all the mix cannot be drawn: an error, not a warning.
        let bareOnly = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: ["data.files=['\(unannotated)']"],
                                            runDirectory: run.appendingPathComponent("bare"), mode: .automatic)
        XCTAssertThrowsError(try InstructTuningTask(bareOnly.recipe, run: bareOnly.run)) {
            XCTAssertTrue("\($0)".contains("no episode has VLA-IT annotations"), "\($0)")
        }
    }

    /// A recipe that names no views reads the stage-1 run's (its frozen expert was trained on them), and
    /// the run folder's recipe says which; one that names others is refused with both lists.
    func testViewsComeFromTheStage1RunUnlessTheRecipeNamesOthers() throws {
        let recipe = try recipe("stage2-views")
        let run = try temporaryFolder("s2views")
        let inherited = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: [], runDirectory: run, mode: .automatic)
        XCTAssertEqual(inherited.recipe.data.imageKeys, ["agentview_rgb", "side_rgb"])
        let saved = try RecipeValidator.read(run.appendingPathComponent("recipe.yaml"), as: InstructTuningRecipe.self, hint: "")
        XCTAssertEqual(saved.data.imageKeys, ["agentview_rgb", "side_rgb"])
        XCTAssertEqual(try InstructTuningTask(inherited.recipe, run: inherited.run).loader.dataset.layout.imageKeys, ["agentview_rgb", "side_rgb"])
        let other = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: ["data.image_keys=[agentview_rgb]"],
                                         runDirectory: run.appendingPathComponent("one-view"), mode: .automatic)
        XCTAssertThrowsError(try InstructTuningTask(other.recipe, run: other.run)) {
            XCTAssertTrue("\($0)".contains("data.image_keys: [\"agentview_rgb\"] but the stage-1 model"), "\($0)")
            XCTAssertTrue("\($0)".contains("[\"agentview_rgb\", \"side_rgb\"]"), "\($0)")
        }
    }

    /// As rank r of a data-parallel job, the task's multimodal batch of `batch_size` is the r-th block of
    /// what one process with the job's total batch draws, batch after batch.
    func testMultimodalBatchesAreBlocksOfOneProcesssBatch() throws {
        let recipe = try recipe("stage2-shards")
        let root = try temporaryFolder("s2shards")
        func task(_ shard: DataShard, batch: Int) throws -> InstructTuningTask {
            let prepared = try RunSetup.prepare(InstructTuningRecipe.self, recipe: recipe, overrides: ["multimodal.batch_size=\(batch)"],
                                                runDirectory: root.appendingPathComponent("\(shard.rank)-of-\(shard.count)"), mode: .automatic)
            return try InstructTuningTask(prepared.recipe, run: prepared.run, shard: shard)
        }
        let (whole, first, second) = (try task(.whole, batch: 6), try task(DataShard(rank: 0, count: 2), batch: 3),
                                      try task(DataShard(rank: 1, count: 2), batch: 3))
        for _ in 0..<3 {
            let all = whole.nextMultimodalIndices()
            XCTAssertEqual(all.count, 6)
            XCTAssertEqual(first.nextMultimodalIndices() + second.nextMultimodalIndices(), all)
        }
    }

    /// Over many draws the text kinds follow the recipe's mix, and the conversations drawn are those
    /// `possibleConversations` lists; samples without annotations fall back to the plain command.
    func testInstructMixFollowsTheRecipeAndFallsBack() throws {
        let tokenizer = try BPETokenizer.train(corpus: ["What action should the robot take to close the drawer?"], vocabularySize: 300,
                                               specialTokens: ChatTemplate.specialTokens(actionQueries: 2))
        let prompt = try ActionPrompt(template: ChatTemplate(imageTokens: 2), tokenizer: tokenizer, numQueries: 2)
        var fractions = InstructTuningRecipe.Mix()
        fractions.restate = 0.5
        let mix = InstructMix(mix: fractions, prompt: prompt)
        let annotations = [Annotation(category: .caption, question: "Describe the scene.", response: "A drawer."),
                           Annotation(category: .qa, question: "Is the drawer open?", response: "yes", type: "state_start"),
                           Annotation(category: .contextCreation, instruction: "The room is messy.", response: "Close the drawer."),
                           Annotation(category: .commandRewriting, instruction: "shut it", response: "Close the drawer.")]
        var rng = RNG(seed: 3)
        var counts: [InstructMix.Kind: Int] = [:]
        let n = 4000
        // What the unseen-token rows are chosen from: every conversation the mix can draw.
        let possible = Set(mix.possibleConversations(instruction: "close the drawer", annotations: annotations, motions: ["move left"]))
        var drawn = Set<Conversation>()
        for _ in 0..<n {
            let (conversation, kind) = mix.conversation(instruction: "close the drawer", annotations: annotations, motion: { "move left" }, rng: &rng)
            counts[kind, default: 0] += 1
            drawn.insert(conversation)
            switch kind {
            case .dialogue: XCTAssertEqual(conversation.turns.count, 2)
            case .context, .rewriting: XCTAssertTrue(conversation.turns[0].user.hasSuffix("First answer my question."))
            case .motion: XCTAssertEqual(conversation.turns[0].answer, "move left")
            case .plain: XCTAssertEqual(conversation.turns[0].answer, "")
            case .restate:
                XCTAssertEqual(conversation.turns[0].user, "What action should the robot take to close the drawer? First answer my question.")
                XCTAssertEqual(conversation.turns[0].answer, "Close the drawer.")
            }
        }
        XCTAssertEqual(drawn, possible, "possibleConversations lists exactly what the mix draws")
        func share(_ k: InstructMix.Kind) -> Double { Double(counts[k] ?? 0) / Double(n) }
        XCTAssertEqual(share(.plain) + share(.motion) + share(.restate), 0.4, accuracy: 0.03)
        XCTAssertEqual(share(.motion) / 0.4, 0.2, accuracy: 0.04)
        XCTAssertEqual(share(.restate) / (share(.plain) + share(.restate)), 0.5, accuracy: 0.05)
        for k in [InstructMix.Kind.dialogue, .context, .rewriting] { XCTAssertEqual(share(k), 0.2, accuracy: 0.03, "\(k)") }
        for _ in 0..<200 {
            let (_, kind) = mix.conversation(instruction: "close the drawer", annotations: [], motion: { "move left" }, rng: &rng)
            XCTAssertTrue(kind == .plain || kind == .motion)
        }
        // The recipe's default asks no plain command to be restated.
        let byDefault = InstructMix(mix: InstructTuningRecipe.Mix(), prompt: prompt)
        for _ in 0..<200 {
            let (_, kind) = byDefault.conversation(instruction: "close the drawer", annotations: annotations, motion: { "move left" }, rng: &rng)
            XCTAssertNotEqual(kind, .restate)
        }
    }

    /// Generation with the two KV caches (base pass for the router, adapted pass) picks exactly the
    /// tokens a full recompute of the routed model picks at every step.
    func testCachedRoutedGenerationMatchesFullRecompute() throws {
        let (task, _) = try train(try recipe("stage2-gen", steps: 3), in: try temporaryFolder("s2gen"))
        let vla = task.vla
        vla.adapters.training = false
        let prompt = task.stage1.prompt
        // Make the language adapter matter, so routing changes the answer.
        for (name, p) in vla.namedParameters() where name.contains("lora_B.language") {
            for i in 0..<p.count { p.pointer[i] = Float((i * 7) % 11) * 0.05 - 0.25 }
        }
        let open = prompt.tokenized(Conversation([prompt.actionTurn("put the apple on the plate", ActionPrompt.Suffix.think)]), open: true).ids
        let data = task.loader.dataset
        let frame = try data.sample(episode: data.episodes.count - 1, step: 0, horizon: 1)
        let side = task.stage1.imageSize
        let pixels = Tensor(frame.images[0].map { Float($0) / 255 }, shape: [1, side, side, 3])
        let imageTokens = withoutGrad { vla.vlm.imageTokens(pixels) }
        let cached = vla.generate(prompt: open, imageTokens: imageTokens, maxNewTokens: 8, stop: [])
        var ids = open, recomputed: [Int32] = []
        for _ in 0..<8 {
            let h = withoutGrad { vla.hiddenStates(ids: ids, batch: 1, length: ids.count, imageTokens: imageTokens) }
            let logits = vla.vlm.languageModel.logits(h.slice(axis: 1, (ids.count - 1)..<ids.count)).toArray()
            let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            recomputed.append(next)
            ids.append(next)
        }
        XCTAssertEqual(cached, recomputed)
    }

    /// The export bundle keeps the adapters and the router and reproduces the run: the same response
    /// and the same actions for the same observation and noise seed; the schema says how it thinks.
    func testExportedBundleRespondsAndActsExactlyLikeTheRun() throws {
        let root = try temporaryFolder("s2exp"), run = root.appendingPathComponent("run")
        _ = try train(try recipe("stage2-export", steps: 3), in: run)
        let policy = try ActionPolicy(contentsOf: run)
        XCTAssertEqual(policy.stage, "instruct-tune")
        XCTAssertTrue(policy.thinksByDefault)
        let bundle = root.appendingPathComponent("bundle")
        try policy.export(from: run, to: bundle)
        let exported = try ActionPolicy(contentsOf: bundle)
        XCTAssertNotNil(exported.vla.scaleHead)
        let data = try EpisodeDataset(files: [try Self.fixture.get().demos.appendingPathComponent("instruct-place-v3.hdf5").path],
                                      layout: policy.recipe.data.episodeLayout)
        let sample = try data.sample(episode: 0, step: 5, horizon: 1)
        let instruction = "I want a healthy snack. Put it on the plate."
        let (a, b) = (try policy.respond(image: sample.images[0], instruction: instruction),
                      try exported.respond(image: sample.images[0], instruction: instruction))
        XCTAssertEqual(a.ids, b.ids)
        var (r1, r2) = (RNG(seed: 5), RNG(seed: 5))
        XCTAssertEqual(try policy.act(images: sample.images, proprio: sample.proprio, instruction: instruction, response: a.ids, rng: &r1),
                       try exported.act(images: sample.images, proprio: sample.proprio, instruction: instruction, response: b.ids, rng: &r2))
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: bundle.appendingPathComponent("schema.json"))) as! [String: Any]
        XCTAssertEqual(schema["stage"] as? String, "instruct-tune")
        XCTAssertEqual(schema["adapters"] as? [String], ["language", "action"])
    }

    /// Responses are generated on the first request, every `every` requests after, and at once for
    /// a new instruction; in between the same response is reused with its age. Each client has its own.
    func testThoughtCacheRegeneratesOnScheduleOnANewInstructionAndPerClient() {
        var cache = ThoughtCache(every: 3)
        var generated = 0
        func ask(_ instruction: String) -> ThoughtCache.Thought {
            cache.thought(for: instruction) { generated += 1; return ([Int32(generated)], "r\(generated)") }
        }
        XCTAssertEqual((0..<7).map { _ in ask("a").age }, [0, 1, 2, 0, 1, 2, 0])
        XCTAssertEqual(generated, 3)
        XCTAssertEqual(ask("b"), ThoughtCache.Thought(ids: [4], text: "r4", age: 0))
        XCTAssertEqual(ask("b").text, "r4")
        // Another client asking the same gets a response of its own, and the first keeps its schedule.
        XCTAssertEqual(cache.thought(for: "b", client: 2) { ([5], "r5") }, ThoughtCache.Thought(ids: [5], text: "r5", age: 0))
        XCTAssertEqual(ask("b"), ThoughtCache.Thought(ids: [4], text: "r4", age: 2))
        XCTAssertEqual(cache.clients, 2)
        cache.forget(client: 2)
        XCTAssertEqual(cache.clients, 1)
        XCTAssertEqual(cache.thought(for: "b", client: 2) { ([6], "r6") }.text, "r6", "a forgotten client starts afresh")
    }

    /// The ablation: no router or language adapter; the LM's own weights train (all vocabulary rows),
    /// the vision side and the expert stay frozen.
    func testFullFinetuneAblationTrainsTheLanguageModel() throws {
        let url = try recipe("stage2-full", steps: 2, fullFinetune: true)
        var initial: [String: [Float]] = [:]
        let (task, _) = try train(url, in: try temporaryFolder("s2full")) { task in
            for (name, p) in task.vla.namedParameters() { initial[name] = p.toArray() }
        }
        XCTAssertNil(task.vla.scaleHead)
        for (name, p) in task.vla.namedParameters() {
            let changed = p.toArray() != initial[name]!
            if name == "vlm.language_model.model.layers.0.mlp.gate_proj.weight" { XCTAssertTrue(changed, "the LM base trains in the ablation") }
            if name.hasPrefix("vlm.vision_model.") || name.hasPrefix("vlm.mlp1.") || name.hasPrefix("action_model.") {
                XCTAssertFalse(changed, "\(name) must stay frozen")
            }
        }
    }
}
