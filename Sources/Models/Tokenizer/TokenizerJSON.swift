import Checkpoint
import Foundation

/// Reading and writing `tokenizer.json` in the Hugging Face `tokenizers` format, for byte-level BPE:
/// `model.type == "BPE"` with `vocab` and `merges` (either "a b" strings or [a, b] pairs),
/// `added_tokens`, a `ByteLevel` pre-tokenizer (with its GPT-2 regex) or a `Sequence` of a regex
/// `Split` and a regex-free `ByteLevel` (the Qwen2 layout), and an optional NFC normalizer.
extension BPETokenizer {
    public convenience init(contentsOf url: URL) throws {
        func fail(_ m: String) -> TokenizerError { TokenizerError(message: "\(url.path): \(m)") }
        guard let data = try? Data(contentsOf: url), let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("not a readable JSON file")
        }
        guard let model = root["model"] as? [String: Any], model["type"] as? String == "BPE" else {
            throw fail("model.type must be \"BPE\" (other tokenizer models are not supported)")
        }
        if model["byte_fallback"] as? Bool == true { throw fail("model.byte_fallback is not supported (byte-level BPE does not need it)") }
        guard let vocabObject = model["vocab"] as? [String: Any] else { throw fail("model.vocab is missing") }
        var vocab: [String: Int32] = [:]
        for (token, id) in vocabObject {
            guard let i = id as? Int else { throw fail("model.vocab[\(token)] is not an integer id") }
            vocab[token] = Int32(i)
        }
        var merges: [(String, String)] = []
        for entry in model["merges"] as? [Any] ?? [] {
            if let s = entry as? String {
                let parts = s.split(separator: " ", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw fail("model.merges entry '\(s)' is not 'a b'") }
                merges.append((parts[0], parts[1]))
            } else if let pair = entry as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw fail("model.merges entry \(entry) is neither 'a b' nor [a, b]")
            }
        }
        var special: [String: Int32] = [:]
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let content = entry["content"] as? String, let id = entry["id"] as? Int else { throw fail("added_tokens entry without content/id") }
            special[content] = Int32(id)
        }
        let pattern = try Self.pattern(root["pre_tokenizer"], fail)
        var normalizer: String?
        if let n = root["normalizer"] as? [String: Any] {
            guard n["type"] as? String == "NFC" else { throw fail("normalizer \(n["type"] ?? "?") is not supported (null or NFC)") }
            normalizer = "NFC"
        }
        try self.init(vocab: vocab, merges: merges, specialTokens: special, pattern: pattern, normalizer: normalizer)
    }

    private static func pattern(_ preTokenizer: Any?, _ fail: (String) -> TokenizerError) throws -> String {
        guard let p = preTokenizer as? [String: Any] else { throw fail("pre_tokenizer is missing") }
        switch p["type"] as? String {
        case "ByteLevel":
            guard p["add_prefix_space"] as? Bool != true else { throw fail("pre_tokenizer.add_prefix_space = true is not supported") }
            guard p["use_regex"] as? Bool ?? true else { throw fail("a ByteLevel pre-tokenizer without its regex needs a Split before it") }
            return ByteLevel.gpt2Pattern
        case "Sequence":
            let steps = p["pretokenizers"] as? [[String: Any]] ?? []
            guard steps.count == 2, steps[0]["type"] as? String == "Split", steps[1]["type"] as? String == "ByteLevel",
                  steps[1]["use_regex"] as? Bool == false, steps[0]["behavior"] as? String == "Isolated",
                  steps[0]["invert"] as? Bool != true,
                  let regex = (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String else {
                throw fail("pre_tokenizer Sequence must be [Split(Regex, Isolated), ByteLevel(use_regex: false)]")
            }
            return regex
        default:
            throw fail("pre_tokenizer type \(p["type"] ?? "?") is not supported (ByteLevel or Sequence[Split, ByteLevel])")
        }
    }

    /// Writes a tokenizer.json that Hugging Face `tokenizers` loads and encodes identically.
    public func write(to url: URL) throws {
        let added = specialTokens.sorted { $0.value < $1.value }.map { token, id -> [String: Any] in
            ["id": Int(id), "content": token, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": patternSource == ByteLevel.gpt2Pattern]
        let preTokenizer: [String: Any] = patternSource == ByteLevel.gpt2Pattern ? byteLevel : [
            "type": "Sequence",
            "pretokenizers": [["type": "Split", "pattern": ["Regex": patternSource], "behavior": "Isolated", "invert": false], byteLevel],
        ]
        let root: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": normalizer.map { ["type": $0] as Any } ?? NSNull(),
            "pre_tokenizer": preTokenizer, "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      // Special tokens sit in the model vocabulary too, as `tokenizers` writes them; without
                      // them it assigns the added tokens fresh ids.
                      "vocab": vocab.merging(specialTokens) { $1 }.mapValues { Int($0) },
                      "merges": merges.map { [$0.0, $0.1] }] as [String: Any],
        ]
        let data = try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(url) { try $0.write(data) }
    }
}
