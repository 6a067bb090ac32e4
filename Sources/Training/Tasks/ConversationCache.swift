import Models

/// Tokenised conversations by content. A run draws its texts from a few thousand distinct ones
/// (instructions × motion phrases × annotations), and BPE-encoding them again for every sample
/// would take most of a small model's step.
final class ConversationCache {
    let prompt: ActionPrompt
    private var tokenized: [Conversation: (ids: [Int32], targets: [Int32], roles: [TokenRole])] = [:]

    init(prompt: ActionPrompt) { self.prompt = prompt }

    func callAsFunction(_ conversation: Conversation) -> (ids: [Int32], targets: [Int32], roles: [TokenRole]) {
        if let cached = tokenized[conversation] { return cached }
        let made = prompt.tokenized(conversation)
        tokenized[conversation] = made
        return made
    }
}
