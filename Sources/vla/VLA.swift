import ArgumentParser
import Checkpoint
import Episodes
import Foundation
import Training

@main
struct VLA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vla",
        abstract: "InstructVLA-Swift utilities: train a recipe, serve, run or export a policy, plot a run, inspect a checkpoint.",
        subcommands: [Train.self, Serve.self, Act.self, Probe.self, Export.self, Eval.self, Plot.self, Stats.self, Inspect.self])
}

/// Prints `error: …` and exits with `code`, instead of a stack trace.
func fail(_ error: Error, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    Foundation.exit(code)
}

extension VLA {
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train any recipe (its `task:` picks the model). Resumes when the run folder has checkpoints.",
            discussion: TrainArguments.exitStatusHelp)

        @OptionGroup var arguments: TrainArguments

        func run() throws { arguments.runAndExit() }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate a trained run. --vqa: exact-match accuracy on a held-out VQA split, per question type, of a VLM run or of a stage-1/2 model (its adapters and router on; the stage-0 data).")

        @Argument(help: "Run folder (e.g. Checkpoints/tiny/vlm or Checkpoints/tiny/stage2) or export bundle.")
        var runFolder: String

        @Flag(help: "Score visual question answering.")
        var vqa = false

        @Option(help: "Split to score.")
        var split = "test"

        @Option(help: "Score only the first N examples.")
        var limit: Int?

        @Option(name: .shortAndLong, help: "Write the results JSON here (default: <run>/eval_vqa_<split>.json).")
        var output: String?

        func run() throws {
            guard vqa else { throw ValidationError("say what to evaluate: --vqa (closed-loop evaluation arrives with the evaluation issue)") }
            do {
                let folder = URL(fileURLWithPath: runFolder)
                let score = try VQAEvaluation.run(runFolder: folder, split: split, limit: limit)
                for (type, c) in score.perType.sorted(by: { $0.key < $1.key }) {
                    print(String(format: "  %-10@ %5.1f%%  (%d/%d)", type as NSString, Double(c.correct) / Double(max(c.total, 1)) * 100, c.correct, c.total))
                }
                print(String(format: "exact match on %@: %.1f%%", split as NSString, score.accuracy * 100))
                let target = output.map { URL(fileURLWithPath: $0) } ?? folder.appendingPathComponent("eval_vqa_\(split).json")
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(score).write(to: target, options: .atomic)
                print("wrote \(target.path)")
            } catch {
                fail(error)
            }
        }
    }

    struct Plot: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Render a run's metrics.jsonl as PNG curves.")

        @Argument(help: "Run folder (or a metrics.jsonl file).")
        var runFolder: String

        @Option(name: .shortAndLong, help: "Output PNG (default: <run>/metrics.png).")
        var output: String?

        func run() throws {
            let source = URL(fileURLWithPath: runFolder)
            let target = output.map { URL(fileURLWithPath: $0) }
                ?? (source.pathExtension == "jsonl" ? source.deletingPathExtension().appendingPathExtension("png") : source.appendingPathComponent("metrics.png"))
            do {
                let panels = try MetricsPlot.render(run: source, to: target)
                print("wrote \(target.path): \(panels.joined(separator: ", "))")
            } catch {
                fail(error)
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate episode files and compute their normalisation statistics.")

        @Argument(help: "HDF5 episode files.")
        var files: [String]

        @Option(help: "robomimic (also LIBERO) or aloha.")
        var layout = "robomimic"

        @Option(help: "Split mask to use (robomimic); empty for all episodes.")
        var split = "train"

        @Option(help: "Write norm_stats.json here.")
        var output: String?

        func run() throws {
            do {
                let base: EpisodeLayout = layout == "aloha" ? .aloha : .metaworld
                guard layout == "aloha" || layout == "robomimic" else { throw EpisodeError("--layout: expected robomimic or aloha, got '\(layout)'") }
                let dataset = try EpisodeDataset(files: files, layout: base, split: split.isEmpty ? nil : split)
                let steps = dataset.episodes.map(\.length).reduce(0, +)
                print("\(dataset.episodes.count) episodes, \(steps) steps, images \(dataset.imageShape), actions \(dataset.actionDim), proprio \(dataset.proprioDim)")
                if !dataset.skippedNonFinite.isEmpty { print("skipped for NaN/Inf actions: \(dataset.skippedNonFinite.joined(separator: ", "))") }
                let stats = try NormStats(dataset: dataset)
                for (name, s) in [("actions", stats.actions), ("proprio", stats.proprio)] {
                    print("\(name): q01 \(s.q01.map { String(format: "%.3f", $0) }) q99 \(s.q99.map { String(format: "%.3f", $0) })")
                }
                if let output { try stats.write(to: URL(fileURLWithPath: output)); print("wrote \(output)") }
            } catch {
                fail(error)
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tensors and metadata of a safetensors file.")

        @Argument(help: "A .safetensors file.")
        var file: String

        func run() throws {
            do {
                let f = try SafetensorsFile(path: file)
                for (k, v) in f.metadata.sorted(by: { $0.key < $1.key }) { print("metadata \(k) = \(v)") }
                var total = 0
                for e in f.entries.sorted(by: { $0.name < $1.name }) {
                    print("\(e.name)  \(e.dtype.rawValue)  \(e.shape)")
                    total += e.count
                }
                print("\(f.entries.count) tensors, \(total) values")
            } catch {
                fail(error)
            }
        }
    }
}
