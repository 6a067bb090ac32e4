import Foundation

extension BPETokenizer {
    /// Trains a byte-level BPE vocabulary on `corpus`: the 256 byte characters, then merges of the
    /// most frequent adjacent pair (ties broken by the pair's text, so training is deterministic)
    /// until `vocabularySize` is reached or no pair occurs `minFrequency` times. Special tokens take
    /// the first ids, in the order given.
    public static func train(corpus: [String], vocabularySize: Int, specialTokens: [String] = [],
                             minFrequency: Int = 2, pattern: String = ByteLevel.gpt2Pattern) throws -> BPETokenizer {
        let regex: NSRegularExpression
        do { regex = try NSRegularExpression(pattern: pattern) } catch {
            throw TokenizerError(message: "pre-tokenizer regex does not compile: \(pattern)")
        }
        var wordCounts: [String: Int] = [:]
        for text in corpus {
            let ns = text as NSString
            for m in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
                wordCounts[String(ByteLevel.encode(Substring(ns.substring(with: m.range)))), default: 0] += 1
            }
        }
        var special: [String: Int32] = [:]
        for t in specialTokens where special[t] == nil { special[t] = Int32(special.count) }
        var vocab: [String: Int32] = [:]
        for c in ByteLevel.byteToChar.sorted() { vocab[String(c)] = Int32(special.count + vocab.count) }

        var words = wordCounts.sorted { $0.key < $1.key }.map { (symbols: $0.key.map { String($0) }, count: $0.value) }
        var merges: [(String, String)] = []
        while special.count + vocab.count < vocabularySize {
            var pairCounts: [String: (a: String, b: String, n: Int)] = [:]
            for w in words where w.symbols.count > 1 {
                for i in 0..<(w.symbols.count - 1) {
                    let key = w.symbols[i] + " " + w.symbols[i + 1]
                    pairCounts[key, default: (w.symbols[i], w.symbols[i + 1], 0)].n += w.count
                }
            }
            guard let best = pairCounts.max(by: { ($0.value.n, $1.key) < ($1.value.n, $0.key) }), best.value.n >= minFrequency else { break }
            let (a, b) = (best.value.a, best.value.b)
            merges.append((a, b))
            vocab[a + b] = vocab[a + b] ?? Int32(special.count + vocab.count)
            for k in words.indices where words[k].symbols.count > 1 {
                var s = words[k].symbols, i = 0
                while i < s.count - 1 {
                    if s[i] == a && s[i + 1] == b { s[i] = a + b; s.remove(at: i + 1) }
                    i += 1
                }
                words[k].symbols = s
            }
        }
        return try BPETokenizer(vocab: vocab, merges: merges, specialTokens: special, pattern: pattern)
    }
}
