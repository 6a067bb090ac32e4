import Autograd
import Foundation

/// One image-question-answer example.
public struct VQAExample: Sendable, Hashable {
    public let question: String
    public let answer: String
    /// The question family (e.g. "color", "count"), for per-type accuracy.
    public let type: String
}

/// Image/question/answer data in HDF5: `/<split>/images` (N, H, W, 3) uint8 and `/<split>/qa`
/// (N,) JSON strings `{"question", "answer", "type"}`, as Datasets/vqa/generate_shapes.py writes.
public final class VQADataset {
    public let examples: [VQAExample]
    public let imageShape: [Int]
    private let sources: [(file: HDF5File, images: HDF5Dataset, offset: Int, count: Int)]

    public init(files: [String], split: String) throws {
        var examples: [VQAExample] = [], sources: [(HDF5File, HDF5Dataset, Int, Int)] = []
        var shape: [Int]?
        for path in files {
            let file = try HDF5File(path: path)
            let images = try file.dataset("\(split)/images")
            guard images.shape.count == 4, images.shape[3] == 3, images.kind == .unsignedInteger, images.elementSize == 1 else {
                throw EpisodeError("\(path): '\(split)/images' should be (N, H, W, 3) uint8, found \(images.shape)")
            }
            if shape == nil { shape = Array(images.shape.dropFirst()) }
            guard Array(images.shape.dropFirst()) == shape! else { throw EpisodeError("\(path): images are \(images.shape.dropFirst()), earlier files \(shape!)") }
            let qa = try file.stringList("\(split)/qa")
            guard qa.count == images.shape[0] else {
                throw EpisodeError("\(path): \(qa.count) questions for \(images.shape[0]) images in '\(split)'")
            }
            for (i, text) in qa.enumerated() {
                guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                      let q = object["question"] as? String, let a = object["answer"] as? String else {
                    throw EpisodeError("\(path): '\(split)/qa'[\(i)] is not {\"question\", \"answer\"} JSON")
                }
                examples.append(VQAExample(question: q, answer: a, type: object["type"] as? String ?? ""))
            }
            sources.append((file, images, examples.count - qa.count, qa.count))
        }
        guard !examples.isEmpty else { throw EpisodeError("no VQA examples in \(files.joined(separator: ", ")) split '\(split)'") }
        (self.examples, self.sources, self.imageShape) = (examples, sources, shape!)
    }

    /// The HWC uint8 image of example `index`.
    public func image(_ index: Int) throws -> [UInt8] {
        guard let s = sources.first(where: { index >= $0.offset && index < $0.offset + $0.count }) else {
            throw EpisodeError("VQA example \(index) out of range 0..<\(examples.count)")
        }
        return try s.images.bytes(rows: (index - s.offset)..<(index - s.offset + 1))
    }

    /// The images of examples `indices` as pixels [B, H, W, 3] in [0, 1].
    public func pixels(_ indices: [Int]) throws -> Tensor {
        let images = Tensor.zeros([indices.count] + imageShape)
        let size = imageShape.reduce(1, *)
        for (k, i) in indices.enumerated() {
            let bytes = try image(i)
            let out = images.pointer + k * size
            for j in 0..<size { out[j] = Float(bytes[j]) / 255 }
        }
        return images
    }
}
