import ArgumentParser

/// `--think yes|no` of the commands that run a policy: whether a stage-2 model answers the
/// instruction in words before acting; absent, the model's recipe decides (`inference.think`).
struct ThinkOption: ParsableArguments {
    @Option(name: .customLong("think"), help: ArgumentHelp("Stage 2: answer the instruction in words before acting (yes|no); default: the recipe's inference.think.", valueName: "yes|no"))
    var choice: String?

    func validate() throws {
        guard choice == nil || ["yes", "no"].contains(choice!) else { throw ValidationError("--think takes yes or no, got '\(choice!)'") }
    }

    /// nil: the recipe decides.
    var think: Bool? { choice.map { $0 == "yes" } }
}
