import Autograd
import Serving
import TestSupport
import XCTest

final class MsgPackTests: XCTestCase {
    func testEveryTypeRoundTripsThroughItsSmallestEncoding() throws {
        let values: [(MsgPackValue, Int)] = [
            (.null, 1), (.bool(true), 1), (.int(5), 1), (.int(-3), 1), (.int(200), 2), (.int(-100), 2), (.int(70_000), 5),
            (.int(-70_000), 5), (.int(Int64.min), 9), (.uint(UInt64.max), 9), (.float(1.5), 9),
            (.string("prompt"), 7), (.string(String(repeating: "x", count: 40)), 42), (.string(String(repeating: "é", count: 200)), 403),
            (.binary([1, 2, 3]), 5), (.binary([UInt8](repeating: 7, count: 70_000)), 70_005),
            (.array((0..<20).map { .int(Int64($0)) }), 23),
            (.map([MsgPackEntry(.string("a"), .null), MsgPackEntry(.binary([0x62]), .array([]))]), 8),
        ]
        for (value, size) in values {
            let bytes = MsgPack.encode(value)
            XCTAssertEqual(bytes.count, size, "\(value)")
            XCTAssertEqual(try MsgPack.decode(bytes), value)
        }
    }

    func testKnownBytesFromTheSpec() throws {
        // {"compact": true, "schema": 0} as every msgpack implementation writes it.
        let bytes: [UInt8] = [0x82, 0xa7] + Array("compact".utf8) + [0xc3, 0xa6] + Array("schema".utf8) + [0x00]
        let value = try MsgPack.decode(bytes)
        XCTAssertEqual(value["compact"], .bool(true))
        XCTAssertEqual(value["schema"], .int(0))
        XCTAssertEqual(try MsgPack.decode([0xca, 0x3f, 0xc0, 0x00, 0x00]), .float(1.5))  // float32
        XCTAssertEqual(try MsgPack.decode([0xd1, 0xff, 0x00]), .int(-256))  // int16
    }

    func testMalformedInputIsAnErrorNotACrash() {
        let cases: [([UInt8], String)] = [
            ([], "truncated"), ([0xa5, 0x61], "truncated"), ([0xc6, 0xff, 0xff, 0xff, 0xff], "truncated"),
            ([0xdd, 0x7f, 0xff, 0xff, 0xff], "elements declared"), ([0xc1], "invalid msgpack type"),
            ([0xd4, 0x01, 0x02], "extension"), ([0xa2, 0xff, 0xfe], "UTF-8"), ([0x01, 0x02], "left over"),
            ([UInt8](repeating: 0x91, count: 100) + [0x00], "nested deeper"),
        ]
        for (bytes, expected) in cases {
            XCTAssertThrowsError(try MsgPack.decode(bytes), "\(bytes.prefix(6))") { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
    }

    func testRandomMutationsNeverCrash() throws {
        let observation = observationMessage(image: [UInt8](repeating: 9, count: 4 * 4 * 3), imageShape: [4, 4, 3])
        let valid = MsgPack.encode(observation)
        var rng = RNG(seed: 7)
        for _ in 0..<5000 {
            var bytes = valid
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes.removeSubrange(i...)
                default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                }
                if bytes.isEmpty { break }
            }
            // Either outcome is fine; what matters is that neither decoding nor validation traps.
            if let value = try? MsgPack.decode(bytes) { _ = try? schema.validate(value) }
        }
    }

    func testNumpyArraysUseOpenpiEncoding() throws {
        let array = NumpyArray(floats: [1, -2, 3.5, 0, 0, 1], shape: [2, 3])
        let value = array.msgpack
        XCTAssertEqual(value["dtype"], .string("<f4"))
        XCTAssertEqual(value["shape"], .array([.int(2), .int(3)]))
        guard case .map(let entries) = value else { return XCTFail("not a map") }
        XCTAssertTrue(entries.allSatisfy { if case .binary = $0.key { true } else { false } }, "openpi's unpacker looks for bytes keys")
        let decoded = try XCTUnwrap(try NumpyArray(msgpack: try MsgPack.decode(MsgPack.encode(value))))
        XCTAssertEqual(decoded.floats(), [1, -2, 3.5, 0, 0, 1])
        let doubles = [0.25, -8.0].flatMap { withUnsafeBytes(of: $0) { Array($0) } }
        let f8 = try XCTUnwrap(try NumpyArray(msgpack: ndarray(dtype: "<f8", shape: [2], data: doubles)))
        XCTAssertEqual(f8.floats(), [0.25, -8])
        XCTAssertThrowsError(try NumpyArray(msgpack: ndarray(dtype: "<f4", shape: [3], data: [0, 0, 0, 0]))) { XCTAssertTrue("\($0)".contains("needs 12 bytes, got 4")) }
        XCTAssertThrowsError(try NumpyArray(msgpack: ndarray(dtype: ">f4", shape: [1], data: [0, 0, 0, 0]))) { XCTAssertTrue("\($0)".contains("unsupported ndarray dtype")) }
        XCTAssertThrowsError(try NumpyArray(msgpack: ndarray(dtype: "|u1", shape: [1 << 40, 1 << 40], data: []))) { XCTAssertTrue("\($0)".contains("too large")) }
        XCTAssertNil(try NumpyArray(msgpack: .string("not an array")))
    }

    let schema = ObservationSchema(imageHeight: 4, imageWidth: 4, stateDim: 4)

    func testSchemaAcceptsAValidObservationAndNamesWhatIsWrongOtherwise() throws {
        let image = [UInt8]((0..<48).map { UInt8($0) })
        let observation = try schema.validate(observationMessage(image: image, imageShape: [4, 4, 3]))
        XCTAssertEqual(observation.images, [image])
        XCTAssertEqual(observation.state, [0.1, 0.2, 0.3, 1])
        XCTAssertEqual(observation.prompt, "open the drawer")

        let cases: [(MsgPackValue, String)] = [
            (.array([]), "must be a msgpack map"),
            (observationMessage(image: image, imageShape: [4, 4, 3], drop: "prompt"), "missing 'prompt'"),
            (observationMessage(image: image, imageShape: [4, 4, 3], extra: "observation/images"), "unexpected observation key 'observation/images'"),
            (observationMessage(image: [UInt8](repeating: 0, count: 4 * 4 * 4), imageShape: [4, 4, 4]), "must be uint8 [4, 4, 3]"),
            (observationMessage(image: image, imageShape: [4, 4, 3], state: [1, 2, 3]), "shape [4], got float32 [3]"),
            (observationMessage(image: image, imageShape: [4, 4, 3], state: [1, .nan, 3, 4]), "must be finite"),
            (observationMessage(image: image, imageShape: [4, 4, 3], prompt: .int(3)), "'prompt' must be a str"),
        ]
        for (message, expected) in cases {
            XCTAssertThrowsError(try schema.validate(message)) { XCTAssertTrue("\($0)".contains(expected), "\($0) lacks \(expected)") }
        }
    }
}

func ndarray(dtype: String, shape: [Int], data: [UInt8]) -> MsgPackValue {
    .map([MsgPackEntry(.binary(Array("__ndarray__".utf8)), .bool(true)), MsgPackEntry(.binary(Array("data".utf8)), .binary(data)),
          MsgPackEntry(.binary(Array("dtype".utf8)), .string(dtype)), MsgPackEntry(.binary(Array("shape".utf8)), .array(shape.map { .int(Int64($0)) }))])
}

func observationMessage(image: [UInt8], imageShape: [Int], state: [Float] = [0.1, 0.2, 0.3, 1], prompt: MsgPackValue = .string("open the drawer"),
                        drop: String? = nil, extra: String? = nil) -> MsgPackValue {
    var entries = [
        MsgPackEntry(.string("observation/image"), ndarray(dtype: "|u1", shape: imageShape, data: image)),
        MsgPackEntry(.string("observation/state"), NumpyArray(floats: state, shape: [state.count]).msgpack),
        MsgPackEntry(.string("prompt"), prompt),
    ].filter { $0.key.keyString != drop }
    if let extra { entries.append(MsgPackEntry(.string(extra), .null)) }
    return .map(entries)
}
