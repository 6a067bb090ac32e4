import ArgumentParser
import Checkpoint
import Episodes
import Foundation
import Training

@main
struct VLA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vla",
        abstract: "InstructVLA-Swift utilities: train a recipe, plot a run, inspect a checkpoint.",
        subcommands: [Train.self, Plot.self, Stats.self, Inspect.self])
}

/// Prints `error: …` and exits with `code`, instead of a stack trace.
func fail(_ error: Error, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    Foundation.exit(code)
}

extension VLA {
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train from a recipe. Resumes when the run folder has checkpoints.",
            discussion: """
            Exit status: 0 done; 3 stopped on a non-finite loss (last good checkpoint kept); 128+N stopped by \
            signal N after saving a checkpoint (rerun to resume); 1 or 2 on errors.
            """)

        @Argument(help: "Recipe file, e.g. Recipes/tiny/lm.yaml")
        var recipe: String

        @Option(name: .customLong("set"), help: "Override a recipe key, e.g. --set train.steps=200 (repeatable).")
        var overrides: [String] = []

        @Flag(help: "Require a checkpoint to resume from.")
        var resume = false

        @Flag(help: "Delete the run folder and start over.")
        var overwrite = false

        @Option(help: "Run folder (default: Checkpoints/<recipe folder>/<recipe name>).")
        var runDir: String?

        func validate() throws {
            if resume && overwrite { throw ValidationError("--resume and --overwrite contradict each other") }
        }

        func run() throws {
            let mode: ResumeMode = resume ? .required : overwrite ? .overwrite : .automatic
            let outcome: TrainingOutcome
            do {
                outcome = try TaskRegistry.train(recipe: URL(fileURLWithPath: recipe), overrides: overrides,
                                                 runDirectory: runDir.map { URL(fileURLWithPath: $0) }, mode: mode,
                                                 command: (["vla"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
            } catch {
                fail(error, code: error is RecipeError ? 2 : 1)
            }
            switch outcome {
            case .completed: break
            case .interrupted(let signal, _): Foundation.exit(128 + signal)
            case .diverged: Foundation.exit(3)
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
