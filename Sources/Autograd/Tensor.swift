import Foundation

/// A dense, row-major Float32 tensor that records the ops applied to it for reverse-mode
/// differentiation.
///
/// Tensors are always contiguous; `reshaped` shares storage, every other op writes a new buffer.
/// Parameters are leaves with `requiresGrad == true`; op results require grad when grad mode is on
/// and any input does, and then carry the backward rule that produced them (see `Tape.swift`).
public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let storage: TensorStorage
    /// For a leaf: whether it trains. For an op result: whether gradients flow through it.
    public var requiresGrad: Bool
    /// Accumulated gradient of a leaf after `backward()`; `nil` until something flows into it.
    public var grad: Tensor?
    /// Optional per-row (first axis) trainability, e.g. only the new token rows of a vocabulary.
    /// Ops that scatter into rows (embedding) skip frozen rows, and optimizers leave them untouched.
    public var trainableRows: [Bool]? {
        didSet {
            if let rows = trainableRows {
                precondition(rows.count == shape.first, "trainableRows has \(rows.count) entries for a tensor of shape \(shape)")
            }
        }
    }
    var producer: TapeNode?

    /// Calls `body(start, count)` for each stretch of elements an optimizer may change: the whole
    /// tensor, or with `trainableRows` each trainable row.
    public func forEachTrainableSpan(_ body: (_ start: Int, _ count: Int) -> Void) {
        guard let rows = trainableRows else { return body(0, count) }
        let rowLength = count / max(shape.first ?? 1, 1)
        for (r, trains) in rows.enumerated() where trains { body(r * rowLength, rowLength) }
    }

    public init(shape: [Int], storage: TensorStorage, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == storage.count,
                     "Tensor: shape \(shape) holds \(shape.reduce(1, *)) elements but storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == shape.reduce(1, *), "Tensor: \(values.count) values for shape \(shape)")
        let storage = values.withUnsafeBufferPointer { TensorStorage(copying: $0) }
        self.init(shape: shape, storage: storage, requiresGrad: requiresGrad)
    }

    public convenience init(scalar: Float, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(zeros: shape.reduce(1, *)), requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(shape: shape, storage: TensorStorage(uninitializedCount: shape.reduce(1, *)), requiresGrad: requiresGrad)
        t.pointer.update(repeating: value, count: t.count)
        return t
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor { full(shape, 1, requiresGrad: requiresGrad) }

    /// A new tensor with uninitialised contents, for kernels that write every element.
    static func empty(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(uninitializedCount: shape.reduce(1, *)))
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }
    public var isLeaf: Bool { producer == nil }

    public func toArray() -> [Float] { Array(storage.buffer) }

    /// The value of a one-element tensor.
    public func item() -> Float {
        precondition(count == 1, "item(): tensor of shape \(shape) has \(count) elements")
        return pointer[0]
    }

    /// A copy that shares no storage and records no history.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(copying: UnsafeBufferPointer(storage.buffer)))
    }

    /// The gradient buffer of this tensor, created as zeros on first use. Backward rules add into it.
    func gradPointer() -> UnsafeMutablePointer<Float> {
        if let g = grad { return g.pointer }
        let g = Tensor.zeros(shape)
        grad = g
        return g.pointer
    }

    public func zeroGrad() { grad = nil }

    public var description: String {
        let preview = storage.buffer.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}

/// The number of elements of a shape.
@inline(__always) func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// Row-major strides of a shape.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { strides[i] = s; s *= shape[i] }
    return strides
}

/// Resolves a possibly negative axis against a rank, with a clear message when out of range.
func normalizeAxis(_ axis: Int, rank: Int, _ op: String) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < rank, "\(op): axis \(axis) out of range for rank \(rank)")
    return a
}
