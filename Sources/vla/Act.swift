import ArgumentParser
import Autograd
import Episodes
import Foundation
import Training

extension VLA {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an inference bundle (weights, recipes, tokenizer, norm stats, schema, manifest) of a stage-1 or stage-2 run's newest checkpoint (a stage-2 bundle keeps its adapters and router).")

        @Argument(help: "Stage-1 run folder.")
        var runFolder: String

        @Option(name: .shortAndLong, help: "Bundle folder to write (replaced atomically if it exists).")
        var output: String

        @OptionGroup var weights: WeightsOption

        func run() throws {
            do {
                let folder = URL(fileURLWithPath: runFolder)
                let policy = try ActionPolicy(contentsOf: folder, averaged: weights.averaged)
                try policy.export(from: folder, to: URL(fileURLWithPath: output))
                print("exported \(policy.source.deletingLastPathComponent().lastPathComponent) (\(policy.source.lastPathComponent)) of \(runFolder) to \(output)")
            } catch {
                fail(error)
            }
        }
    }

    struct Act: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Predict one action chunk for a recorded frame: prints the un-normalised chunk (and the recorded one) as JSON; a stage-2 model that thinks first also prints its response.")

        @Argument(help: "A stage-1 or stage-2 run folder or export bundle.")
        var model: String

        @OptionGroup var thinking: ThinkOption

        @OptionGroup var weights: WeightsOption

        @Option(help: "A recorded frame, FILE:EPISODE:STEP (e.g. Datasets/tiny/drawer-close-v3.hdf5:demo_0:5).")
        var frame: String

        @Option(help: "Instruction (default: the episode's own).")
        var instruction: String?

        @Option(help: "Seed of the flow-matching noise.")
        var seed: UInt64 = 0

        func run() throws {
            let parts = frame.split(separator: ":").map(String.init)
            guard parts.count == 3, let step = Int(parts[2]) else { throw ValidationError("--frame must be FILE:EPISODE:STEP, got '\(frame)'") }
            do {
                let policy = try ActionPolicy(contentsOf: URL(fileURLWithPath: model), averaged: weights.averaged)
                let dataset = try EpisodeDataset(files: [parts[0]], layout: policy.recipe.data.observationLayout)
                guard let e = dataset.episodes.firstIndex(where: { $0.name == parts[1] }) else {
                    throw EpisodeError("\(parts[0]): no episode '\(parts[1])' (has \(dataset.episodes.prefix(3).map(\.name).joined(separator: ", "))…)")
                }
                guard (0..<dataset.episodes[e].length).contains(step) else {
                    throw EpisodeError("\(parts[0]): \(parts[1]) has \(dataset.episodes[e].length) steps; step \(step) is outside")
                }
                let sample = try dataset.sample(episode: e, step: step, horizon: policy.horizon)
                var rng = RNG(seed: seed)
                let said = instruction ?? sample.instruction
                let response = try (thinking.think ?? policy.thinksByDefault) ? policy.respond(image: sample.images[0], instruction: said) : nil
                let actions = try policy.act(images: sample.images, proprio: sample.proprio, instruction: said, response: response?.ids, rng: &rng)
                let rows = { (v: [Float]) in stride(from: 0, to: v.count, by: policy.actionDim).map { Array(v[$0..<($0 + policy.actionDim)]) } }
                var out: [String: Any] = ["instruction": said, "actions": rows(actions), "recorded": rows(sample.actions)]
                if let response { out["response"] = response.text }
                print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
            } catch {
                fail(error)
            }
        }
    }
}
