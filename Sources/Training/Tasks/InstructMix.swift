import Autograd
import Episodes
import Models

/// Stage 2's text for one robot sample (§2.2 of the method notes), drawn per sample:
///
/// - plain: the command → queries (some with the language-motion phrase first, as stage 1; some
///   asked "… First answer my question." → "{the episode's action sentence} " + queries: restate);
/// - dialogue: a caption or QA turn answered in words, then the command → queries;
/// - context creation / command rewriting: "What action should the robot take to {instruction}?
///   First answer my question." → "{response} " + queries.
///
/// A sample whose episode lacks the drawn kind of annotation falls back to the plain command.
struct InstructMix {
    enum Kind: String, CaseIterable { case plain, motion, restate, dialogue, context, rewriting }

    let mix: InstructTuningRecipe.Mix
    let prompt: ActionPrompt

    func conversation(instruction: String, annotations: [Annotation], motion: () -> String, rng: inout RNG) -> (Conversation, Kind) {
        let u = Double(rng.uniform()), withMotion = Double(rng.uniform()) < mix.motion
        func pick(_ category: Annotation.Category...) -> Annotation? {
            let found = annotations.filter { category.contains($0.category) }
            return found.isEmpty ? nil : found[min(Int(rng.uniform() * Float(found.count)), found.count - 1)]
        }
        let command = prompt.actionTurn(instruction)
        if u >= mix.plain && u < mix.plain + mix.dialogue, let turn = pick(.caption, .qa) {
            return (Conversation([Conversation.Turn(user: turn.prompt, answer: turn.response, queries: false), command]), .dialogue)
        }
        if u >= mix.plain + mix.dialogue {
            let isContext = u < mix.plain + mix.dialogue + mix.context
            if let command = pick(isContext ? .contextCreation : .commandRewriting) {
                return (Conversation([prompt.actionTurn(command.prompt, .think, answer: command.response)]), isContext ? .context : .rewriting)
            }
        }
        if withMotion { return (Conversation([prompt.actionTurn(instruction, .motion, answer: motion())]), .motion) }
        // The action sentence is the response of every rewriting and context annotation of the episode.
        if mix.restate > 0, Double(rng.uniform()) < mix.restate, let action = pick(.commandRewriting, .contextCreation) {
            return (Conversation([prompt.actionTurn(instruction, .think, answer: action.response)]), .restate)
        }
        return (Conversation([command]), .plain)
    }

    /// Every conversation `conversation` can draw for an episode, with each of `motions` as its
    /// motion phrase.
    func possibleConversations(instruction: String, annotations: [Annotation], motions: Set<String>) -> [Conversation] {
        let command = prompt.actionTurn(instruction)
        var all = [Conversation([command])] + motions.map { Conversation([prompt.actionTurn(instruction, .motion, answer: $0)]) }
        for annotation in annotations {
            switch annotation.category {
            case .caption, .qa:
                all.append(Conversation([Conversation.Turn(user: annotation.prompt, answer: annotation.response, queries: false), command]))
            case .commandRewriting, .contextCreation:
                all.append(Conversation([prompt.actionTurn(annotation.prompt, .think, answer: annotation.response)]))
                all.append(Conversation([prompt.actionTurn(instruction, .think, answer: annotation.response)]))
            }
        }
        return all
    }
}
