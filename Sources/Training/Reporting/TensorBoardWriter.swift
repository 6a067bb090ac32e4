import Foundation

/// Writes scalars as a TensorBoard event file (`events.out.tfevents.*`): TFRecord framing (length,
/// masked CRC-32C, payload, masked CRC-32C) around hand-encoded `Event` protobufs, so no protobuf
/// library is needed.
public final class TensorBoardWriter {
    public let url: URL
    private let handle: FileHandle

    public init(directory: URL) throws {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        // time.host.pid.random: unique even for two writers of one process within a second.
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let handle = FileHandle(forWritingAtPath: url.path) else {
            throw RecipeError("cannot create TensorBoard event file \(url.path)")
        }
        self.handle = handle
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        try writeRecord(event.bytes)
    }

    deinit { try? handle.close() }

    /// One event holding every scalar of a step.
    public func scalars(_ values: [String: Double], step: Int) throws {
        var summary = Protobuf()
        for (tag, value) in values.sorted(by: { $0.key < $1.key }) {
            var v = Protobuf()
            v.string(1, tag)
            v.float(2, Float(value))
            summary.message(1, v)
        }
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        try writeRecord(event.bytes)
    }

    private func writeRecord(_ payload: [UInt8]) throws {
        var record: [UInt8] = []
        let length = littleEndianBytes(UInt64(payload.count))
        record += length
        record += littleEndianBytes(maskedCRC32C(length))
        record += payload
        record += littleEndianBytes(maskedCRC32C(payload))
        try handle.write(contentsOf: record)
    }
}

/// The few protobuf wire types an Event needs.
struct Protobuf {
    var bytes: [UInt8] = []
    mutating func key(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }
    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func varint(_ field: Int, _ value: UInt64) { key(field, 0); rawVarint(value) }
    mutating func double(_ field: Int, _ value: Double) { key(field, 1); bytes += littleEndianBytes(value.bitPattern) }
    mutating func float(_ field: Int, _ value: Float) { key(field, 5); bytes += littleEndianBytes(value.bitPattern) }
    mutating func string(_ field: Int, _ value: String) { key(field, 2); rawVarint(UInt64(value.utf8.count)); bytes += value.utf8 }
    mutating func message(_ field: Int, _ value: Protobuf) { key(field, 2); rawVarint(UInt64(value.bytes.count)); bytes += value.bytes }
}

func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// CRC-32C (Castagnoli), masked as TFRecord does.
func maskedCRC32C(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0x82F6_3B78 & (0 &- (crc & 1))) }
    }
    crc = ~crc
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}
