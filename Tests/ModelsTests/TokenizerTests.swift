import Foundation
import TestSupport
import XCTest
@testable import Models

/// Byte-level BPE parity with Hugging Face `tokenizers`, in both directions.
final class TokenizerTests: XCTestCase {
    static let corpus: [String] = {
        let objects = ["red block", "blue mug", "drawer", "window", "door handle", "puck", "peg", "button"]
        let verbs = ["pick up", "push", "open", "close", "slide", "press", "put away", "reach for"]
        var lines: [String] = []
        for (i, o) in objects.enumerated() {
            for (j, v) in verbs.enumerated() {
                lines.append("\(v) the \(o) and place it \(i + j) cm to the left.")
                lines.append("Q: where is the \(o)? A: it's on the table, near the \(objects[(i + j) % objects.count]).")
            }
        }
        return lines + ["<|im_start|>user\nWhat do you see?<|im_end|>", "Numbers 12345 and 3.14; tabs\tand  double  spaces\n\nnew lines"]
    }()
    static let heldOut = [
        "Pick up the green bowl, then open the cabinet!",
        "It'll be 42 steps — or 43?  Don't worry.\n",
        "<|im_start|>assistant\nThe drawer is closed.<|im_end|><image>",
        "Ünïcödé: naïve café, 東京, emoji 🤖 and spaces   at the end   ",
        "what's\r\nup\t\tdoc",
        "",
    ]
    let special = ["<|im_start|>", "<|im_end|>", "<image>"]

    func hfEncode(_ path: URL, _ texts: [String]) throws -> (ids: [[Int32]], decoded: [String]) {
        let out = try PythonReference.run("Tests/ModelsTests/Parity/hf_tokenizers.py", input: ["mode": "encode", "path": path.path, "texts": texts])
        return ((out["ids"] as! [[Int]]).map { $0.map(Int32.init) }, out["decoded"] as! [String])
    }

    func testTokenizerTrainedHereEncodesLikeHuggingFace() throws {
        let tokenizer = try BPETokenizer.train(corpus: Self.corpus, vocabularySize: 400, specialTokens: special)
        XCTAssertGreaterThan(tokenizer.merges.count, 50)
        XCTAssertEqual(tokenizer.id(of: "<|im_start|>"), 0)
        let url = try temporaryFolder().appendingPathComponent("tokenizer.json")
        try tokenizer.write(to: url)
        let texts = Self.heldOut + Self.corpus.prefix(10)
        let theirs = try hfEncode(url, texts)
        for (i, text) in texts.enumerated() {
            XCTAssertEqual(tokenizer.encode(text), theirs.ids[i], "ids of \(text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(theirs.ids[i]), text, "round trip of \(text.debugDescription)")
        }
        let reloaded = try BPETokenizer(contentsOf: url)
        XCTAssertEqual(reloaded.encode(Self.heldOut[0]), tokenizer.encode(Self.heldOut[0]))
    }

    func testTokenizerTrainedByHuggingFaceEncodesHereIdentically() throws {
        for qwen in [false, true] {
            let url = try temporaryFolder().appendingPathComponent("tokenizer.json")
            _ = try PythonReference.run("Tests/ModelsTests/Parity/hf_tokenizers.py", input: [
                "mode": "train", "path": url.path, "corpus": Self.corpus, "vocab_size": 420, "special": special, "qwen_split": qwen,
            ])
            let tokenizer = try BPETokenizer(contentsOf: url)
            let theirs = try hfEncode(url, Self.heldOut)
            for (i, text) in Self.heldOut.enumerated() {
                XCTAssertEqual(tokenizer.encode(text), theirs.ids[i], "\(qwen ? "Qwen2 split" : "GPT-2 regex"): ids of \(text.debugDescription)")
                XCTAssertEqual(tokenizer.decode(theirs.ids[i]), theirs.decoded[i], "decoding of \(text.debugDescription)")
            }
        }
    }

    func testUnsupportedTokenizerFilesAreRefusedByName() throws {
        let url = try temporaryFolder().appendingPathComponent("tokenizer.json")
        try #"{"model": {"type": "WordPiece", "vocab": {}}}"#.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BPETokenizer(contentsOf: url)) { XCTAssertTrue("\($0)".contains("model.type must be \"BPE\""), "\($0)") }
        try "not json".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BPETokenizer(contentsOf: url)) { XCTAssertTrue("\($0)".contains("not a readable JSON file"), "\($0)") }
    }
}
