import Episodes
import Foundation
import Models

/// Exact-match results, overall and per question type (`vla eval --vqa` writes this as JSON).
public struct VQAScore: Codable, Sendable, Equatable {
    public struct Count: Codable, Sendable, Equatable { public var correct = 0, total = 0 }
    public var split: String
    public var perType: [String: Count] = [:]
    /// What the model answered, per example in split order, to read beside the data's answers.
    public var answers: [String] = []

    enum CodingKeys: String, CodingKey { case split, perType = "per_type", accuracy, answers }

    /// New tokens greedy answers may take: the split's longest answer and the end-of-turn token, so
    /// that no answer is scored wrong for want of room (a longer output is wrong either way).
    static func answerTokens(_ examples: [VQAExample], tokenizer: BPETokenizer) -> Int {
        1 + (examples.map { tokenizer.encode($0.answer).count }.max() ?? 0)
    }

    public init(split: String) { self.split = split }

    /// Exact match of greedy answers on `data`'s first `limit` examples: `answer(i, budget, stop)`
    /// generates example i's answer with at most `budget` new tokens, stopping at `stop` (the
    /// end-of-turn token), for whichever model is being scored.
    static func exactMatch(_ data: VQADataset, split: String, limit: Int?, tokenizer: BPETokenizer,
                           answer: (_ index: Int, _ budget: Int, _ stop: Int32) throws -> [Int32]) throws -> VQAScore {
        var score = VQAScore(split: split)
        let stop = tokenizer.id(of: ChatTemplate.imEnd)!
        let budget = answerTokens(data.examples, tokenizer: tokenizer)
        for i in 0..<min(limit ?? data.examples.count, data.examples.count) {
            let text = tokenizer.decode(try answer(i, budget, stop).filter { $0 != stop }).trimmingCharacters(in: .whitespacesAndNewlines)
            score.add(type: data.examples[i].type, correct: text == data.examples[i].answer)
            score.answers.append(text)
        }
        return score
    }

    mutating func add(type: String, correct: Bool) {
        perType[type, default: Count()].total += 1
        if correct { perType[type, default: Count()].correct += 1 }
    }

    public var accuracy: Double {
        let total = perType.values.map(\.total).reduce(0, +)
        return total == 0 ? 0 : Double(perType.values.map(\.correct).reduce(0, +)) / Double(total)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(split, forKey: .split)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(perType, forKey: .perType)
        try c.encode(answers, forKey: .answers)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        split = try c.decode(String.self, forKey: .split)
        perType = try c.decode([String: Count].self, forKey: .perType)
        answers = try c.decodeIfPresent([String].self, forKey: .answers) ?? []
    }
}
