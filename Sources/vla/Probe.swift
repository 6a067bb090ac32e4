import ArgumentParser
import Foundation
import Training

extension VLA {
    struct Probe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Does a policy look at the image and read the instruction? Noise-free chunks on recorded frames against the recorded ones, with each image (then each instruction) swapped for another episode's, and the data's own spread.",
            discussion: """
                A policy that ignores the layout in the image scores an error near the spread, and swapping
                images barely changes its actions (swap_change far below the spread). instruction_change is
                the same for the instruction: zero where a file has one instruction for all its episodes.
                A model trained with an auxiliary loss also shows its head against the recorded targets
                (aux_error, in the environment's units, against aux_spread, the error of always guessing
                their mean): whether its vision locates on these frames what it was taught to.
                """)

        @Argument(help: "A stage-1 or stage-2 run folder or export bundle.")
        var model: String

        @Argument(help: "Episode files (HDF5) to probe, e.g. Datasets/metaworld-mt10/push-v3.hdf5.")
        var files: [String]

        @Option(help: "Steps to probe, comma-separated.")
        var steps = "0,15"

        @Option(help: "Episodes per file.")
        var episodes = 30

        @Option(help: "Only the episodes of this split (the files' mask/<split>, e.g. valid for held-out layouts); all episodes by default.")
        var split: String?

        @Option(name: .shortAndLong, help: "Also write the results as JSON here.")
        var output: String?

        func run() throws {
            let stepList = steps.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !stepList.isEmpty, stepList.allSatisfy({ $0 >= 0 }) else { throw ValidationError("--steps: comma-separated steps >= 0, got '\(steps)'") }
            guard episodes >= 2 else { throw ValidationError("--episodes: at least 2 (images are swapped between episodes)") }
            do {
                let policy = try ActionPolicy(contentsOf: URL(fileURLWithPath: model))
                let moments: (mean: [Float], std: [Float])?
                do {
                    moments = try ImageSensitivity.auxiliaryMoments(policy)
                } catch {
                    // The head's targets are standardised with the training episodes' moments.
                    FileHandle.standardError.write(Data("note: no auxiliary columns, the training data is not readable here: \(error)\n".utf8))
                    moments = nil
                }
                var results: [ImageSensitivity] = []
                print("file".padding(toLength: 32, withPad: " ", startingAt: 0) + "  step  error  swapped_error  swap_change  instruction_change  spread"
                      + (moments == nil ? "" : "  aux_error  aux_spread  aux_instruction_change"))
                for file in files {
                    for step in stepList {
                        let r = try ImageSensitivity.probe(policy, file: file, step: step, episodes: episodes, split: split, auxiliaryMoments: moments)
                        results.append(r)
                        let name = URL(fileURLWithPath: file).lastPathComponent
                        var line = name.padding(toLength: 32, withPad: " ", startingAt: 0)
                            + String(format: "  %4d  %.3f  %13.3f  %11.3f  %18.3f  %6.3f", step, r.error, r.swappedError, r.swapChange,
                                     r.instructionChange, r.spread)
                        if moments != nil {
                            // "-": the file does not record the auxiliary targets.
                            func cell(_ value: Double?, _ width: Int) -> String {
                                "  " + (value.map { String(format: "%\(width).3f", $0) } ?? String(repeating: " ", count: width - 1) + "-")
                            }
                            line += cell(r.auxiliaryError, 9) + cell(r.auxiliarySpread, 10) + cell(r.auxiliaryInstructionChange, 22)
                        }
                        print(line)
                    }
                }
                if let output {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    try encoder.encode(results).write(to: URL(fileURLWithPath: output), options: .atomic)
                    print("wrote \(output)")
                }
            } catch {
                fail(error)
            }
        }
    }
}
