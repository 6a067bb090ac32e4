import ArgumentParser
import Training

/// Stage 0: train the VLM (vision encoder, projector, language model) on image/question/answer data.
@main
struct PretrainVLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain-vlm",
        abstract: "Stage 0: train the VLM from a 'vlm' recipe. Resumes when the run folder has checkpoints.",
        discussion: TrainArguments.exitStatusHelp)

    @OptionGroup var arguments: TrainArguments

    func run() throws { arguments.runAndExit(requiredTask: "vlm") }
}
