import ArgumentParser
import Training

/// Stage 1: the action expert learns to act through the frozen VLM's latent action queries.
@main
struct PretrainAction: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain-action",
        abstract: "Stage 1: train the action expert, action LoRA and query rows from a 'pretrain-action' recipe. Resumes when the run folder has checkpoints.",
        discussion: TrainArguments.exitStatusHelp)

    @OptionGroup var arguments: TrainArguments

    func run() throws { arguments.runAndExit(requiredTask: "pretrain-action") }
}
