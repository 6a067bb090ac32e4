import Autograd
import Foundation
import TestSupport
import XCTest
@testable import Checkpoint

/// A safetensors file assembled by hand, for malformed inputs.
func rawSafetensors(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
    var out = Data()
    var length = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
    withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
    out.append(contentsOf: Array(header.utf8))
    out.append(contentsOf: data)
    return out
}

final class SafetensorsTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    func testRoundTripF32F16BF16WithMetadataAndAlignment() throws {
        let dir = try temporaryFolder()
        let a = Tensor([1, -2.5, 3.14159, 1e-3, 65504, -0.0], shape: [2, 3])
        let b = Tensor((0..<7).map { Float($0) * 0.37 - 1 }, shape: [7])
        let scalar = Tensor(scalar: 42)
        let url = dir.appendingPathComponent("t.safetensors")
        try Safetensors.save([("a", a), ("b.half", b), ("c.bf", b), ("s", scalar)], to: url, metadata: ["step": "12", "note": "quote\" and \\"]) {
            $0.hasSuffix(".half") ? .f16 : $0.hasSuffix(".bf") ? .bf16 : .f32
        }
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.metadata, ["step": "12", "note": "quote\" and \\"])
        XCTAssertEqual(try file.tensor("a").toArray(), a.toArray())
        XCTAssertEqual(try file.tensor("s").shape, [])
        assertClose(try file.tensor("b.half").toArray(), b.toArray(), tol: 1e-3)
        assertClose(try file.tensor("c.bf").toArray(), b.toArray(), tol: 8e-3)
        XCTAssertEqual(file.entry("b.half")?.dtype, .f16)
        // The header pads to a multiple of 8 and the widest dtypes come first.
        let raw = try Data(contentsOf: url)
        let n = raw.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + Int(n)) % 8, 0)
        XCTAssertEqual(file.entries.map(\.name), ["a", "s", "b.half", "c.bf"])
    }

    func testIntegerAndBoolReads() throws {
        let dir = try temporaryFolder()
        var data: [UInt8] = []
        for v: Int64 in [-3, 1 << 40] { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        data += [1, 0, 1]
        let header = #"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]}}"#
        let url = dir.appendingPathComponent("i.safetensors")
        try rawSafetensors(header: header, data: data).write(to: url)
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(try file.integers("ids"), [-3, 1 << 40])
        XCTAssertEqual(try file.tensor("mask").toArray(), [1, 0, 1])
        XCTAssertThrowsError(try file.integers("nope"))
    }

    /// Files written here load in Python's safetensors with equal values, and vice versa, for every dtype.
    func testInteropWithPythonSafetensors() throws {
        let dir = try temporaryFolder()
        var rng = RNG(seed: 5)
        let w = Tensor.randomNormal([3, 4], rng: &rng)
        let ours = dir.appendingPathComponent("swift.safetensors")
        try Safetensors.save([("w", w), ("w16", w), ("wbf", w)], to: ours, metadata: ["format": "pt"]) {
            $0 == "w16" ? .f16 : $0 == "wbf" ? .bf16 : .f32
        }
        let read = try PythonReference.run("Tests/CheckpointTests/Interop/safetensors_interop.py", input: ["mode": "read", "path": ours.path])
        XCTAssertEqual(read["metadata"] as? [String: String], ["format": "pt"])
        let tensors = read["tensors"] as! [String: [String: Any]]
        XCTAssertEqual(tensors["w"]?["bits"] as? [Int], w.toArray().map { Int($0.bitPattern) }, "F32 must be bit-exact")
        XCTAssertEqual(tensors["w16"]?["dtype"] as? String, "F16")
        let f16 = tensors["w16"]!["values"] as! [Double], bf16 = tensors["wbf"]!["values"] as! [Double]
        let mine = try SafetensorsFile(url: ours)
        // Half-precision values are exact in float32, so float32 equality is exact equality.
        XCTAssertEqual(f16.map(Float.init), try mine.tensor("w16").toArray(), "F16 values as Python reads them")
        XCTAssertEqual(bf16.map(Float.init), try mine.tensor("wbf").toArray(), "BF16 values as Python reads them")

        let theirs = dir.appendingPathComponent("python.safetensors")
        let values: [Double] = [0.5, -1.25, 3, 0.015625, -7, 2.75]  // exact in every float dtype
        var spec: [String: Any] = [:]
        for dtype in ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL"] {
            let v: [Double] = switch dtype {
            case "I64", "I32": [-3, 7, 1_048_576, 0, -1, 5]
            case "U8": [0, 255, 3, 9, 1, 2]
            case "BOOL": [1, 0, 0, 1, 1, 0]
            default: values
            }
            spec[dtype.lowercased()] = ["dtype": dtype, "shape": [2, 3], "values": v]
        }
        _ = try PythonReference.run("Tests/CheckpointTests/Interop/safetensors_interop.py",
                                    input: ["mode": "write", "path": theirs.path, "metadata": ["origin": "python"], "tensors": spec])
        let file = try SafetensorsFile(url: theirs)
        XCTAssertEqual(file.metadata["origin"], "python")
        for (name, entry) in spec {
            let expected = (entry as! [String: Any])["values"] as! [Double]
            XCTAssertEqual(try file.tensor(name).toArray(), expected.map(Float.init), "\(name) read back")
            XCTAssertEqual(file.entry(name)?.shape, [2, 3])
        }
        XCTAssertEqual(try file.integers("i64"), [-3, 7, 1 << 20, 0, -1, 5])
    }

    /// Each malformed file gives a SafetensorsError whose message says what is wrong.
    func testMalformedFilesGiveClearErrors() throws {
        let dir = try temporaryFolder()
        let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let eight: [UInt8] = Array(repeating: 0, count: 8)
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "shorter than the 8-byte header"),
            ("short", Data([1, 2, 3]), "shorter than the 8-byte header"),
            ("header past end", rawSafetensors(header: good, data: eight, declaredLength: 10_000), "runs past the end"),
            ("huge header", rawSafetensors(header: good, data: eight, declaredLength: 1 << 40), "exceeds the"),
            ("invalid json", rawSafetensors(header: #"{"a": [1, 2"#, data: []), "not valid JSON"),
            ("not an object", rawSafetensors(header: "[1,2]", data: []), "not an object"),
            ("unknown dtype", rawSafetensors(header: #"{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}"#, data: eight), "unknown or unsupported dtype 'F12'"),
            ("fp8 dtype", rawSafetensors(header: #"{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#, data: eight), "unsupported dtype 'F8_E4M3'"),
            ("out of range", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: eight), "outside the 8-byte data section"),
            ("size mismatch", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight), "needs 12 bytes but data_offsets span 8"),
            ("overlap", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight), "overlap"),
            ("gap", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight), "unused bytes"),
            ("trailing bytes", rawSafetensors(header: good, data: eight + [0, 0, 0, 0]), "the tensors cover 8"),
            ("truncated data", rawSafetensors(header: good, data: [0, 0, 0]), "outside the 3-byte data section"),
            ("negative shape", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight), "non-negative integers"),
            ("bad offsets", rawSafetensors(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}"#, data: eight), "[begin, end]"),
            ("metadata value", rawSafetensors(header: #"{"__metadata__":{"k":3}}"#, data: []), "is not a string"),
            ("overflow", rawSafetensors(header: #"{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: eight), "overflows"),
        ]
        for (label, bytes, expected) in cases {
            let url = dir.appendingPathComponent("\(label.replacingOccurrences(of: " ", with: "_")).safetensors")
            try bytes.write(to: url)
            XCTAssertThrowsError(try SafetensorsFile(url: url), label) { error in
                let message = String(describing: error)
                XCTAssertTrue(message.contains(expected), "\(label): '\(message)' should mention '\(expected)'")
                XCTAssertTrue(message.contains(url.path), "\(label): error should name the file")
            }
        }
        XCTAssertThrowsError(try SafetensorsFile(url: dir)) { XCTAssertTrue("\($0)".contains("not a regular file")) }
        XCTAssertThrowsError(try SafetensorsFile(url: dir.appendingPathComponent("missing"))) { XCTAssertTrue("\($0)".contains("cannot open")) }
    }

    /// 10,000 random mutations of a valid file: every one either parses (and then reads) or throws.
    func testFuzzedFilesNeverCrash() throws {
        let dir = try temporaryFolder()
        let url = dir.appendingPathComponent("seed.safetensors")
        var rng = RNG(seed: 9)
        try Safetensors.save([("w", .randomNormal([3, 5], rng: &rng)), ("b", .randomNormal([5], rng: &rng)), ("h", .randomNormal([4], rng: &rng))],
                             to: url, metadata: ["k": "v"]) { $0 == "h" ? .f16 : .f32 }
        let original = [UInt8](try Data(contentsOf: url))
        let target = dir.appendingPathComponent("fuzz.safetensors")
        var parsed = 0
        for trial in 0..<10_000 {
            var bytes = original
            switch trial % 5 {
            case 0:  // flip random bits, mostly in the header
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let i = Int(rng.next() % UInt64(min(bytes.count, 160)))
                    bytes[i] ^= UInt8(1 << (rng.next() % 8))
                }
            case 1: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))  // truncate
            case 2:  // overwrite a byte with a JSON-significant character
                let i = 8 + Int(rng.next() % UInt64(min(bytes.count - 8, 150)))
                bytes[i] = Array("{}[]\",:0123456789-e. ".utf8)[Int(rng.next() % 21)]
            case 3:  // insert or delete a byte in the header
                let i = 8 + Int(rng.next() % 150)
                if rng.next() % 2 == 0 { bytes.insert(UInt8(rng.next() % 256), at: i) } else { bytes.remove(at: i) }
            default:  // corrupt the length field
                let i = Int(rng.next() % 8)
                bytes[i] = UInt8(rng.next() % 256)
            }
            try Data(bytes).write(to: target)
            if let file = try? SafetensorsFile(url: target) {
                parsed += 1
                for name in file.names { _ = try? file.tensor(name) }
            }
        }
        XCTAssertGreaterThan(parsed, 0, "some mutations (e.g. in float data) stay valid")
    }

    func testSHA256KnownVectors() {
        var empty = SHA256()
        XCTAssertEqual(empty.finalize(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var abc = SHA256()
        abc.update(Array("abc".utf8))
        XCTAssertEqual(abc.finalize(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var long = SHA256()  // 1,000,000 × 'a', fed in uneven pieces
        var fed = 0
        while fed < 1_000_000 { let n = min(777, 1_000_000 - fed); long.update([UInt8](repeating: 97, count: n)); fed += n }
        XCTAssertEqual(long.finalize(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
