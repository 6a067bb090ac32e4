/// What each token of a conversation is, for routing statistics: the chat markup (our template's
/// analogue of the paper's system prompt), image placeholders, the user's words, the assistant's
/// words, and the latent action queries.
public enum TokenRole: UInt8, CaseIterable, Sendable {
    case template, image, instruction, response, query

    public var name: String { "\(self)" }
}

/// A multi-turn exchange in the `ChatTemplate` layout, the image (if any) in the first user turn:
///
///     <|im_start|>user\n<image>…\n{q1}<|im_end|>\n<|im_start|>assistant\n{a1}<|im_end|>\n<|im_start|>user\n{q2}…
///
/// Every assistant turn is supervised (its text, queries and closing `<|im_end|>`). Each piece is
/// tokenised on its own so that every token has one role; a single turn gives the same ids as
/// `ChatTemplate.trainingExample` (tested).
public struct Conversation: Sendable, Hashable {
    public struct Turn: Sendable, Hashable {
        public var user: String
        /// The assistant's text before the queries ("" for none).
        public var answer: String
        /// Whether the latent action queries end the answer.
        public var queries: Bool
        public init(user: String, answer: String, queries: Bool) { (self.user, self.answer, self.queries) = (user, answer, queries) }
    }

    public var turns: [Turn]
    public init(_ turns: [Turn]) { self.turns = turns }

    /// Ids, next-token targets (-100 where unsupervised) and roles. With `open` the last assistant
    /// turn is left empty and unsupervised: the prompt a model continues at inference.
    public func tokenized(template: ChatTemplate, tokenizer: BPETokenizer, queryIds: [Int32], withImage: Bool,
                          open: Bool = false) -> (ids: [Int32], targets: [Int32], roles: [TokenRole]) {
        var ids: [Int32] = [], supervised: [Bool] = [], roles: [TokenRole] = []
        func add(_ piece: [Int32], _ role: TokenRole, _ isSupervised: Bool) {
            ids += piece
            roles += Array(repeating: role, count: piece.count)
            supervised += Array(repeating: isSupervised, count: piece.count)
        }
        func text(_ s: String, _ role: TokenRole, supervised: Bool = false) { if !s.isEmpty { add(tokenizer.encode(s), role, supervised) } }
        let imEnd = tokenizer.id(of: ChatTemplate.imEnd)!, imageId = tokenizer.id(of: ChatTemplate.image)!
        for (i, turn) in turns.enumerated() {
            text((i == 0 ? "" : "\n") + ChatTemplate.imStart + "user\n", .template)
            if i == 0 && withImage {
                add(Array(repeating: imageId, count: template.imageTokens), .image, false)
                text("\n", .template)
            }
            text(turn.user, .instruction)
            text(ChatTemplate.imEnd + "\n" + ChatTemplate.imStart + "assistant\n", .template)
            if open && i == turns.count - 1 { break }
            text(turn.queries && !turn.answer.isEmpty ? turn.answer + " " : turn.answer, .response, supervised: true)
            if turn.queries { add(queryIds, .query, true) }
            add([imEnd], .template, true)
        }
        // targets[i] is ids[i + 1] where that token is supervised.
        let targets = ids.indices.map { i in i + 1 < ids.count && supervised[i + 1] ? ids[i + 1] : -100 }
        return (ids, targets, roles)
    }
}
