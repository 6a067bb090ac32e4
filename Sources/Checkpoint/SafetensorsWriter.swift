import Autograd
import Foundation

public enum Safetensors {
    /// Writes named tensors with string metadata, atomically. Each tensor is stored as F32 unless
    /// `dtype` picks F16 or BF16 for it. Layout follows the reference writer: tensors sorted by
    /// descending element size then name, the header padded with spaces to a multiple of 8 bytes.
    public static func save(_ tensors: [(String, Tensor)], to url: URL, metadata: [String: String] = [:],
                            dtype: (String) -> SafetensorsDType = { _ in .f32 }) throws {
        var seen = Set<String>()
        var planned: [(name: String, tensor: Tensor, dtype: SafetensorsDType)] = []
        for (name, tensor) in tensors {
            guard name != "__metadata__", seen.insert(name).inserted else {
                throw SafetensorsError(path: url.path, message: "tensor name '\(name)' is reserved or appears twice")
            }
            let d = dtype(name)
            guard [.f32, .f16, .bf16].contains(d) else {
                throw SafetensorsError(path: url.path, message: "tensor '\(name)': writing \(d.rawValue) is not supported (F32, F16, BF16)")
            }
            planned.append((name, tensor, d))
        }
        planned.sort { ($1.dtype.byteSize, $0.name) < ($0.dtype.byteSize, $1.name) }

        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",") + "}"
        }
        var offset = 0
        for (i, p) in planned.enumerated() {
            let bytes = p.tensor.count * p.dtype.byteSize
            if i > 0 || !metadata.isEmpty { header += "," }
            header += "\(jsonString(p.name)):{\"dtype\":\"\(p.dtype.rawValue)\",\"shape\":[\(p.tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }

        try writeAtomically(url) { out in
            var length = UInt64(headerBytes.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.write($0) }
            try headerBytes.withUnsafeBytes { try out.write($0) }
            for p in planned { try writeData(p.tensor, as: p.dtype, to: out) }
        }
    }

    /// Loads every tensor of a file as Float32, by name.
    public static func load(_ url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = try SafetensorsFile(url: url)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        return (tensors, file.metadata)
    }
}

/// Streams one tensor's data in 1 MiB pieces, converting to the stored dtype.
private func writeData(_ tensor: Tensor, as dtype: SafetensorsDType, to out: FileWriter) throws {
    let chunk = 1 << 18
    var start = 0
    var buffer = [UInt8](repeating: 0, count: chunk * 4)
    while start < tensor.count {
        let n = min(chunk, tensor.count - start)
        let src = tensor.pointer + start
        try buffer.withUnsafeMutableBytes { raw in
            switch dtype {
            case .f16:
                for i in 0..<n { raw.storeBytes(of: Float16(src[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .bf16:
                for i in 0..<n { raw.storeBytes(of: bfloat16Bits(src[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            default:
                for i in 0..<n { raw.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
            try out.write(UnsafeRawBufferPointer(rebasing: raw[0..<(n * dtype.byteSize)]))
        }
        start += n
    }
}

/// A JSON string literal with the escapes JSON requires.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
