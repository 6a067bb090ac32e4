import Foundation

/// The text side of a robot sample (§2.1 and §4 of the method notes): the instruction asked as a
/// question, answered by the latent action queries, optionally preceded by a language-motion phrase
/// (stage 1) or by a response to the instruction (stage 2's "thinking"):
///
///     user: <image>…\nWhat action should the robot take to {instruction}?[ Give both move primitive and action.| First answer my question.]
///     assistant: [{motion or response} ]<new_token_0>…<new_token_{N-1}><|im_end|>
public struct ActionPrompt {
    public let template: ChatTemplate
    public let tokenizer: BPETokenizer
    public let queryIds: [Int32]

    public init(template: ChatTemplate, tokenizer: BPETokenizer, numQueries: Int) throws {
        let ids = (0..<numQueries).map(ChatTemplate.actionQuery).compactMap { tokenizer.id(of: $0) }
        guard ids.count == numQueries else {
            throw TokenizerError(message: "the tokenizer reserves \(ids.count) latent action queries, the model needs \(numQueries) " +
                                 "(train the VLM with tokenizer.action_queries >= \(numQueries))")
        }
        (self.template, self.tokenizer, self.queryIds) = (template, tokenizer, ids)
    }

    public enum Suffix: String, Sendable {
        case none = "", motion = " Give both move primitive and action.", think = " First answer my question."
    }

    public func question(_ instruction: String, _ suffix: Suffix = .none) -> String {
        var text = instruction.trimmingCharacters(in: .whitespacesAndNewlines)
        while text.hasSuffix(".") || text.hasSuffix("?") { text.removeLast() }
        return "What action should the robot take to \(text)?" + suffix.rawValue
    }

    /// The turn that asks for the action, answered by `answer` (a motion phrase or a response; "" for
    /// none) and the queries.
    public func actionTurn(_ instruction: String, _ suffix: Suffix = .none, answer: String = "") -> Conversation.Turn {
        Conversation.Turn(user: question(instruction, suffix), answer: answer, queries: true)
    }

    public func tokenized(_ conversation: Conversation, open: Bool = false) -> (ids: [Int32], targets: [Int32], roles: [TokenRole]) {
        conversation.tokenized(template: template, tokenizer: tokenizer, queryIds: queryIds, withImage: true, open: open)
    }

    /// A stage-1 sample: the command, answered by the motion phrase (if any) and the queries.
    public func conversation(instruction: String, motion: String?) -> Conversation {
        Conversation([actionTurn(instruction, motion == nil ? .none : .motion, answer: motion ?? "")])
    }

    /// Ids and targets (the answer, queries and end of turn supervised) of a stage-1 sample.
    public func example(instruction: String, motion: String?) -> (ids: [Int32], targets: [Int32]) {
        let made = tokenized(conversation(instruction: instruction, motion: motion))
        return (made.ids, made.targets)
    }
}
