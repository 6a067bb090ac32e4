import Foundation

/// GPT-2's byte ↔ character table, which Hugging Face's ByteLevel pre-tokenizer and decoder use:
/// printable bytes map to themselves, the others to code points from U+0100 upward, so every
/// byte string becomes a string of visible characters (a space becomes "Ġ").
public enum ByteLevel {
    static let byteToChar: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var table = [Int](repeating: 0, count: 256)
        for b in printable { table[b] = b }
        var next = 256
        for b in 0..<256 where !printable.contains(b) {
            table[b] = next
            next += 1
        }
        printable.removeAll()
        return table.map { Character(Unicode.Scalar(UInt32($0))!) }
    }()

    static let charToByte: [Character: UInt8] = {
        var map: [Character: UInt8] = [:]
        for (b, c) in byteToChar.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// GPT-2's pre-tokenisation pattern, as Hugging Face's ByteLevel pre-tokenizer applies it
    /// with `use_regex: true`.
    public static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    static func encode(_ text: Substring) -> [Character] { Array(text.utf8).map { byteToChar[Int($0)] } }

    static func decode(_ symbols: String) -> [UInt8] { symbols.compactMap { charToByte[$0] } }
}
