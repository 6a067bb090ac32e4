import ArgumentParser
import Training

/// Stage 2: MoE-LoRA instruction tuning (language + action adapters, per-token router) from a stage-1 run.
@main
struct InstructTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruct-tune",
        abstract: "Stage 2: train the language and action LoRAs, the router and the query rows from an 'instruct-tune' recipe. Resumes when the run folder has checkpoints.",
        discussion: TrainArguments.exitStatusHelp)

    @OptionGroup var arguments: TrainArguments

    func run() throws { arguments.runAndExit(requiredTask: "instruct-tune") }
}
