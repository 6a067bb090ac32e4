import Foundation
import TestSupport
import XCTest
@testable import Episodes

/// Meta-World-Instruct (Datasets/metaworld/instruct_scene.py) and its VLA-IT annotations (annotate.py).
final class InstructSceneTests: XCTestCase {
    /// A tiny set generated and annotated by the real scripts: every annotation refers to what is in its episode and
    /// answers as the simulator's ground truth says; no evaluation wording occurs in the training annotations; the
    /// committed evaluation instruction files are current. The checks live in check_instruct_scene.py.
    func testAnnotationsMatchGroundTruthAndEvalPhrasingsAreHeldOut() throws {
        try PythonReference.runChecks("Tests/EpisodesTests/Fixtures/check_instruct_scene.py") { report, dir in
            XCTAssertEqual(report["demos"] as? Int, 9, "3 demos each of instruct-place-v3, reach-v3 and drawer-open-v3")
            let counts = try XCTUnwrap(report["annotations"] as? [String: Int])
            XCTAssertEqual(counts["caption"], 9, "one caption per episode")
            for category in ["qa", "command_rewriting", "context_creation"] {
                XCTAssertGreaterThanOrEqual(counts[category] ?? 0, 9, category)
            }
            XCTAssertGreaterThan(report["eval_phrasings_checked"] as? Int ?? 0, 50)
            XCTAssertEqual(report["instruction_files"] as? [String], ["atomic", "rewriting", "context"].map { "Datasets/metaworld/eval_instructions/\($0).json" })
            // instruct_summary.py's reference kinds of the committed evaluation instructions (the stage-2 log's table).
            let references = try XCTUnwrap(report["eval_references"] as? [String: [String: Int]])
            XCTAssertEqual(references["rewriting"], ["object by category": 16, "object by colour": 14, "object by shape": 11, "object by use": 9,
                                                     "place by colour": 20, "place by robot_side": 13, "place by side": 17])
            XCTAssertEqual(references["context"], ["object by context": 50, "place by colour": 20, "place by robot_side": 13, "place by side": 17])
            // Stage 0's knowledge of the instruct scene (Datasets/vqa/scene_qa.py): 7 types asked of each of the 3 demos.
            let knowledge = try XCTUnwrap(report["knowledge"] as? [String: Int])
            XCTAssertEqual(Set(knowledge.keys), Set(["objects", "colour", "kind", "shape", "use", "place", "put"].map { "instruct_\($0)" }))
            XCTAssertEqual(knowledge.values.reduce(0, +), 21)
            // --knowledge situation asks only which object fits a context, once per demo.
            XCTAssertEqual(report["situation_knowledge"] as? [String: Int], ["instruct_situation": 3])
            // scene_qa.py --max-demos 1 asks only about the first demo of each mask (2 train, 1 valid here).
            let masks = try XCTUnwrap(report["instruct_masks"] as? [String: [String]])
            XCTAssertEqual(masks["train"]?.count, 2)
            let capped = try XCTUnwrap(report["capped_knowledge_demos"] as? [String: [String]])
            XCTAssertEqual(capped["train"], [masks["train"]![0]])
            XCTAssertEqual(capped["test"], [masks["valid"]![0]])
            let success = try XCTUnwrap(report["success_rate"] as? [String: Double])
            XCTAssertEqual(success["instruct-place-v3"], 1.0, "the scripted expert places the object in every attempt")

            // The Swift loader takes each episode's own instruction, and the policy inputs stay image + proprio.
            let file = dir.appendingPathComponent("instruct/instruct-place-v3.hdf5").path
            let dataset = try EpisodeDataset(files: [file], layout: .metaworld)
            XCTAssertEqual(dataset.episodes.count, 3)
            XCTAssertEqual(dataset.imageShape, [32, 32, 3])
            XCTAssertEqual(dataset.proprioDim, 4, "ee_pos (3) + gripper_state (1), not the 39-d state that names the goal")
            for episode in dataset.episodes {
                XCTAssertTrue(episode.instruction.hasPrefix("put the ") && episode.instruction.contains(" on the "), episode.instruction)
            }
            XCTAssertGreaterThan(Set(dataset.episodes.map(\.instruction)).count, 1, "the instruction differs per episode")
        }
    }
}
