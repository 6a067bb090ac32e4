import ArgumentParser
import Distributed
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
    /// kept); 128+N stopped by signal N after saving; 2 recipe errors; 1 other errors. Under mpirun
    /// this process is one rank of a data-parallel job, and an error on any rank ends the whole job.
    public func runAndExit(requiredTask: String? = nil) -> Never {
        let mode: ResumeMode = resume ? .required : overwrite ? .overwrite : .automatic
        let command = ([URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        var job: Communicator = SingleProcess()
        func finish(_ status: Int32) -> Never {
            job.finalize()
            if !job.isRoot { try? FileManager.default.removeItem(at: DataParallel.scratchFolder(rank: job.rank)) }
            Foundation.exit(status)
        }
        do {
            job = try Job.communicator()
            switch try TaskRegistry.train(recipe: URL(fileURLWithPath: recipe), overrides: overrides,
                                          runDirectory: runDir.map { URL(fileURLWithPath: $0) }, mode: mode,
                                          command: command, requiredTask: requiredTask, job: job) {
            case .completed: finish(0)
            case .interrupted(let signal, _): finish(128 + signal)
            case .diverged: finish(3)
            }
        } catch {
            let status: Int32 = error is RecipeError ? 2 : 1
            guard job.size > 1 else {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                Foundation.exit(status)
            }
            FileHandle.standardError.write(Data("error: rank \(job.rank) of \(job.size): \(error)\n".utf8))
            if !job.isRoot { try? FileManager.default.removeItem(at: DataParallel.scratchFolder(rank: job.rank)) }
            job.abort(status: status)
        }
    }

    public static let exitStatusHelp = """
        Exit status: 0 done; 3 stopped on a non-finite loss (last good checkpoint kept); 128+N stopped by \
        signal N after saving a checkpoint (rerun to resume); 2 recipe errors; 1 other errors.
        """
}
