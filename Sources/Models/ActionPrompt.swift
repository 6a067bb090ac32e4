import Foundation

/// The text side of a robot sample (§2.1 of the method notes): the instruction asked as a question,
/// answered by the latent action queries, optionally preceded by a language-motion phrase:
///
///     user: <image>…\nWhat action should the robot take to {instruction}?[ Give both move primitive and action.]
///     assistant: [{motion} ]<new_token_0>…<new_token_{N-1}><|im_end|>
public struct ActionPrompt {
    public let template: ChatTemplate
    public let tokenizer: BPETokenizer
    public let queryIds: [Int32]
    let queries: String

    public init(template: ChatTemplate, tokenizer: BPETokenizer, numQueries: Int) throws {
        let names = (0..<numQueries).map(ChatTemplate.actionQuery)
        let ids = names.compactMap { tokenizer.id(of: $0) }
        guard ids.count == numQueries else {
            throw TokenizerError(message: "the tokenizer reserves \(ids.count) latent action queries, the model needs \(numQueries) " +
                                 "(train the VLM with tokenizer.action_queries >= \(numQueries))")
        }
        (self.template, self.tokenizer, self.queryIds, self.queries) = (template, tokenizer, ids, names.joined())
    }

    public func question(_ instruction: String, motion: Bool) -> String {
        var text = instruction.trimmingCharacters(in: .whitespacesAndNewlines)
        while text.hasSuffix(".") || text.hasSuffix("?") { text.removeLast() }
        return "What action should the robot take to \(text)?" + (motion ? " Give both move primitive and action." : "")
    }

    /// Ids and targets (the answer, queries and end of turn supervised) of one sample, unpadded when
    /// `length` is nil.
    public func example(instruction: String, motion: String?, length: Int? = nil) -> (ids: [Int32], targets: [Int32]) {
        let question = question(instruction, motion: motion != nil)
        let answer = (motion.map { $0 + " " } ?? "") + queries
        return template.trainingExample(question: question, answer: answer, withImage: true, tokenizer: tokenizer, length: length)
    }
}
