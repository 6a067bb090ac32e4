import ArgumentParser
import Foundation

/// The options every training command shares (`vla train`, `pretrain-vlm`, the stage executables).
public struct TrainArguments: ParsableArguments {
    @Argument(help: "Recipe file, e.g. Recipes/tiny/vlm.yaml")
    public var recipe: String

    @Option(name: .customLong("set"), help: "Override a recipe key, e.g. --set train.steps=200 (repeatable).")
    public var overrides: [String] = []

    @Flag(help: "Require a checkpoint to resume from.")
    public var resume = false

    @Flag(help: "Delete the run folder's contents and start over.")
    public var overwrite = false

    @Option(help: "Run folder (default: Checkpoints/<recipe folder>/<recipe name>).")
    public var runDir: String?

    public init() {}

    public func validate() throws {
        if resume && overwrite { throw ValidationError("--resume and --overwrite contradict each other") }
    }

    /// Trains and exits with the documented status: 0 done; 3 non-finite loss (last good checkpoint
    /// kept); 128+N stopped by signal N after saving; 2 recipe errors; 1 other errors.
    public func runAndExit(requiredTask: String? = nil) -> Never {
        let mode: ResumeMode = resume ? .required : overwrite ? .overwrite : .automatic
        let command = ([URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        do {
            switch try TaskRegistry.train(recipe: URL(fileURLWithPath: recipe), overrides: overrides,
                                          runDirectory: runDir.map { URL(fileURLWithPath: $0) }, mode: mode,
                                          command: command, requiredTask: requiredTask) {
            case .completed: Foundation.exit(0)
            case .interrupted(let signal, _): Foundation.exit(128 + signal)
            case .diverged: Foundation.exit(3)
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(error is RecipeError ? 2 : 1)
        }
    }

    public static let exitStatusHelp = """
        Exit status: 0 done; 3 stopped on a non-finite loss (last good checkpoint kept); 128+N stopped by \
        signal N after saving a checkpoint (rerun to resume); 2 recipe errors; 1 other errors.
        """
}
