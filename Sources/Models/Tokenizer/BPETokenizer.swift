import Foundation

/// A tokenizer problem: unreadable or unsupported tokenizer.json, naming the file and the field.
public struct TokenizerError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A byte-level BPE tokenizer, encoding exactly as Hugging Face `tokenizers` does for the
/// configurations this toolkit writes and reads (GPT-2 / Qwen2 style): special tokens are cut out
/// first; the rest is split by the pre-tokenisation regex, mapped to byte-level characters, and
/// merged pair by pair, lowest merge rank first.
public final class BPETokenizer {
    public let vocab: [String: Int32]
    public let idToToken: [String]
    /// Pair → rank (position in the merge list).
    let ranks: [String: Int]
    public let merges: [(String, String)]
    /// Special (added) tokens, matched verbatim before anything else.
    public let specialTokens: [String: Int32]
    let splitPattern: NSRegularExpression
    let patternSource: String
    /// "NFC" or nil.
    let normalizer: String?
    private var cache: [String: [Int32]] = [:]

    public init(vocab: [String: Int32], merges: [(String, String)], specialTokens: [String: Int32],
                pattern: String = ByteLevel.gpt2Pattern, normalizer: String? = nil) throws {
        self.vocab = vocab
        self.merges = merges
        self.specialTokens = specialTokens
        self.normalizer = normalizer
        patternSource = pattern
        do { splitPattern = try NSRegularExpression(pattern: pattern) } catch {
            throw TokenizerError(message: "pre-tokenizer regex does not compile: \(pattern)")
        }
        var ranks: [String: Int] = [:]
        for (i, (a, b)) in merges.enumerated() where ranks["\(a) \(b)"] == nil { ranks["\(a) \(b)"] = i }
        self.ranks = ranks
        let size = Int(max(vocab.values.max() ?? -1, specialTokens.values.max() ?? -1)) + 1
        var table = [String](repeating: "", count: size)
        for (t, i) in vocab { table[Int(i)] = t }
        for (t, i) in specialTokens { table[Int(i)] = t }
        idToToken = table
    }

    public var vocabularySize: Int { idToToken.count }

    public func id(of token: String) -> Int32? { specialTokens[token] ?? vocab[token] }

    /// Token ids of `text`.
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for (segment, special) in splitOnSpecialTokens(normalizer == "NFC" ? text.precomposedStringWithCanonicalMapping : text) {
            if let special { ids.append(special); continue }
            let ns = segment as NSString
            for match in splitPattern.matches(in: segment, range: NSRange(location: 0, length: ns.length)) {
                ids += encodeWord(ns.substring(with: match.range))
            }
        }
        return ids
    }

    /// Text of `ids` (special tokens included verbatim); invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where Int(id) >= 0 && Int(id) < idToToken.count {
            let token = idToToken[Int(id)]
            if specialTokens[token] != nil {
                if !skipSpecial { bytes += Array(token.utf8) }
            } else {
                bytes += ByteLevel.decode(token)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Cuts out special tokens (longest match first at each position).
    func splitOnSpecialTokens(_ text: String) -> [(String, Int32?)] {
        guard !specialTokens.isEmpty else { return [(text, nil)] }
        let tokens = specialTokens.keys.sorted { $0.count > $1.count }
        var out: [(String, Int32?)] = []
        var rest = Substring(text), plain = ""
        outer: while !rest.isEmpty {
            for t in tokens where rest.hasPrefix(t) {
                if !plain.isEmpty { out.append((plain, nil)); plain = "" }
                out.append((t, specialTokens[t]))
                rest = rest.dropFirst(t.count)
                continue outer
            }
            plain.append(rest.removeFirst())
        }
        if !plain.isEmpty { out.append((plain, nil)) }
        return out
    }

    /// BPE over one pre-token: merge the lowest-ranked adjacent pair (leftmost on ties) until none applies.
    func encodeWord(_ word: String) -> [Int32] {
        if let hit = cache[word] { return hit }
        var symbols = ByteLevel.encode(Substring(word)).map { String($0) }
        while symbols.count > 1 {
            var best = Int.max, at = -1
            for i in 0..<(symbols.count - 1) {
                if let r = ranks["\(symbols[i]) \(symbols[i + 1])"], r < best { (best, at) = (r, i) }
            }
            guard at >= 0 else { break }
            symbols[at] += symbols[at + 1]
            symbols.remove(at: at + 1)
        }
        let ids = symbols.compactMap { vocab[$0] }
        if cache.count < 100_000 { cache[word] = ids }
        return ids
    }
}
