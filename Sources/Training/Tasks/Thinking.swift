/// How a stage-2 policy uses its own response to an instruction before acting (`vla serve --think`).
public enum Thinking: String, CaseIterable, Sendable {
    /// The queries answer the plain command (stage 1's path); nothing is generated.
    case no
    /// The paper's thinking inference: the queries follow the thinking prompt and the response, and
    /// read both.
    case yes
    /// The queries answer the response restated as a plain command, so they never read the original
    /// wording: a rewritten or situated instruction is acted on exactly like the atomic command its
    /// response names. Not in the paper; it isolates what the original prompt adds.
    case restate

    /// The plain command a response restates: the inverse of annotate.py's `sentence()`, which
    /// answers with the episode's command, first letter capitalised and a full stop added.
    public static func command(restating response: String) -> String {
        var text = response.trimmingCharacters(in: .whitespaces)
        if text.hasSuffix(".") { text.removeLast() }
        guard let first = text.first else { return text }
        return first.lowercased() + text.dropFirst()
    }
}
