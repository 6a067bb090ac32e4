// Reshape, permute/transpose, concat, split and slice: data movement with exact (copying) backward.

extension Tensor {
    /// Same data, new shape (one dimension may be -1). Shares storage: no copy.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var shape = newShape
        if let i = shape.firstIndex(of: -1) {
            let known = shape.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: cannot infer -1 in \(newShape) for \(count) elements")
            shape[i] = count / known
        }
        precondition(elementCount(shape) == count, "reshape: shape \(newShape) does not hold \(count) elements of \(self.shape)")
        let x = self
        return .result(shape: shape, storage: storage, inputs: [x]) { g in
            x.accumulateGrad(Tensor(shape: x.shape, storage: g.storage))
        }
    }

    /// Dimensions reordered: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permute: \(order) is not a permutation of 0..<\(rank)")
        let outShape = order.map { shape[$0] }
        let out = TensorStorage(uninitializedCount: count)
        permuteCopy(pointer, shape, order, into: out.pointer)
        let x = self
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return .result(shape: outShape, storage: out, inputs: [x]) { g in
            let back = Tensor.empty(x.shape)
            permuteCopy(g.pointer, outShape, inverse, into: back.pointer)
            x.accumulateGrad(adopting: back)
        }
    }

    /// Swaps two dimensions (the last two by default).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizeAxis(a, rank: rank, "transpose"), normalizeAxis(b, rank: rank, "transpose"))
        return permuted(order)
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizeAxis(axis, rank: rank, "slice")
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax],
                     "slice: range \(range) out of bounds for dimension \(ax) of size \(shape[ax]) in \(shape)")
        return split(self, sizes: [range.lowerBound, range.count, shape[ax] - range.upperBound], axis: ax)[1]
    }
}

/// out[permuted index] = x[index]
func permuteCopy(_ x: ConstFloatPtr, _ shape: [Int], _ order: [Int], into out: FloatPtr) {
    let outShape = order.map { shape[$0] }
    let inStrides = contiguousStrides(shape)
    // Walk the output contiguously and read the input at permuted strides.
    let (cshape, strides) = coalesce(outShape, [contiguousStrides(outShape), order.map { inStrides[$0] }])
    let inner = strides[1].last!
    forEachRow(cshape, strides) { off, n in
        let o = out + off[0], s = x + off[1]
        if inner == 1 { o.update(from: s, count: n) } else { for i in 0..<n { o[i] = s[i * inner] } }
    }
}

/// Dimensions before `axis`, the axis, and the dimensions after it, as three counts.
private func around(_ shape: [Int], _ axis: Int) -> (outer: Int, inner: Int) {
    (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
}

/// Joins tensors along `axis`; all other dimensions must agree.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat: no tensors")
    let first = tensors[0]
    let ax = normalizeAxis(axis, rank: first.rank, "concat")
    for t in tensors {
        precondition(t.rank == first.rank && t.shape.enumerated().allSatisfy { $0.offset == ax || $0.element == first.shape[$0.offset] },
                     "concat: shape \(t.shape) does not match \(first.shape) outside axis \(ax)")
    }
    var outShape = first.shape
    outShape[ax] = tensors.map { $0.shape[ax] }.reduce(0, +)
    let (outer, inner) = around(outShape, ax)
    let out = TensorStorage(uninitializedCount: elementCount(outShape))
    let rowOut = outShape[ax] * inner
    var offset = 0
    for t in tensors {
        let rowIn = t.shape[ax] * inner
        for o in 0..<outer { (out.pointer + o * rowOut + offset).update(from: t.pointer + o * rowIn, count: rowIn) }
        offset += rowIn
    }
    return .result(shape: outShape, storage: out, inputs: tensors) { g in
        var offset = 0
        for t in tensors {
            let rowIn = t.shape[ax] * inner
            if t.requiresGrad {
                let gt = t.gradPointer()
                for o in 0..<outer { addInPlace(gt + o * rowIn, g.pointer + o * rowOut + offset, rowIn) }
            }
            offset += rowIn
        }
    }
}

/// Cuts `x` along `axis` into pieces of the given sizes (which must add up to the dimension).
public func split(_ x: Tensor, sizes: [Int], axis: Int) -> [Tensor] {
    let ax = normalizeAxis(axis, rank: x.rank, "split")
    precondition(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == x.shape[ax],
                 "split: sizes \(sizes) do not add up to dimension \(ax) of \(x.shape)")
    let (outer, inner) = around(x.shape, ax)
    let rowIn = x.shape[ax] * inner
    var offset = 0
    return sizes.map { size in
        var shape = x.shape
        shape[ax] = size
        let rowOut = size * inner, start = offset
        let out = TensorStorage(uninitializedCount: outer * rowOut)
        for o in 0..<outer { (out.pointer + o * rowOut).update(from: x.pointer + o * rowIn + start, count: rowOut) }
        offset += rowOut
        return .result(shape: shape, storage: out, inputs: [x]) { g in
            let gx = x.gradPointer()
            for o in 0..<outer { addInPlace(gx + o * rowIn + start, g.pointer + o * rowOut, rowOut) }
        }
    }
}
