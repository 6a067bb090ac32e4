import ArgumentParser
import Training

/// `--think yes|no|restate` of the commands that run a policy: whether a stage-2 model answers the
/// instruction in words before acting, and how its actions use that answer; absent, the model's
/// recipe decides (`inference.think`).
struct ThinkOption: ParsableArguments {
    @Option(name: .customLong("think"), help: ArgumentHelp(
        "Stage 2: answer the instruction in words before acting (yes), or act on that answer as a plain command (restate), or not (no); default: the recipe's inference.think.",
        valueName: "yes|no|restate"))
    var choice: String?

    func validate() throws {
        guard choice == nil || Thinking(rawValue: choice!) != nil else {
            throw ValidationError("--think takes \(Thinking.allCases.map(\.rawValue).joined(separator: ", ")), got '\(choice!)'")
        }
    }

    /// nil: the recipe decides.
    var thinking: Thinking? { choice.flatMap(Thinking.init(rawValue:)) }
}
