import Foundation

// Broadcasting arithmetic (+ − × ÷) and elementwise math, forward and backward side by side.

/// The scalar rule of a binary op, specialised into each loop so the loops vectorise.
protocol BinaryRule { static func apply(_ a: Float, _ b: Float) -> Float }
enum AddRule: BinaryRule { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum SubRule: BinaryRule { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum MulRule: BinaryRule { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum DivRule: BinaryRule { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b } }

/// out = a ⊙ b with broadcasting; out has `outShape`.
func broadcastBinary<R: BinaryRule>(_: R.Type, _ a: Tensor, _ b: Tensor, _ outShape: [Int]) -> TensorStorage {
    let out = TensorStorage(uninitializedCount: elementCount(outShape))
    let (shape, strides) = coalesce(outShape, [contiguousStrides(outShape), broadcastStrides(a.shape, to: outShape),
                                               broadcastStrides(b.shape, to: outShape)])
    let sa = strides[1].last!, sb = strides[2].last!
    let pa = a.pointer, pb = b.pointer, po = out.pointer
    forEachRow(shape, strides) { off, n in
        let x = pa + off[1], y = pb + off[2], o = po + off[0]
        switch (sa, sb) {
        case (1, 1): for i in 0..<n { o[i] = R.apply(x[i], y[i]) }
        case (1, 0): let v = y[0]; for i in 0..<n { o[i] = R.apply(x[i], v) }
        case (0, 1): let v = x[0]; for i in 0..<n { o[i] = R.apply(v, y[i]) }
        default: for i in 0..<n { o[i] = R.apply(x[i * sa], y[i * sb]) }
        }
    }
    return out
}

public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShape(a.shape, b.shape, "add")
    return .result(shape: shape, storage: broadcastBinary(AddRule.self, a, b, shape), inputs: [a, b]) { g in
        if a.requiresGrad { a.accumulateGrad(reduceBroadcastGrad(g, to: a.shape)) }
        if b.requiresGrad { b.accumulateGrad(reduceBroadcastGrad(g, to: b.shape)) }
    }
}

public func sub(_ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShape(a.shape, b.shape, "sub")
    return .result(shape: shape, storage: broadcastBinary(SubRule.self, a, b, shape), inputs: [a, b]) { g in
        if a.requiresGrad { a.accumulateGrad(reduceBroadcastGrad(g, to: a.shape)) }
        if b.requiresGrad { b.accumulateGrad(reduceBroadcastGrad(mulScalar(g, -1), to: b.shape)) }
    }
}

public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShape(a.shape, b.shape, "mul")
    return .result(shape: shape, storage: broadcastBinary(MulRule.self, a, b, shape), inputs: [a, b]) { g in
        // d(a·b)/da = b, d(a·b)/db = a
        if a.requiresGrad {
            a.accumulateGrad(reduceBroadcastGrad(Tensor(shape: shape, storage: broadcastBinary(MulRule.self, g, b, shape)), to: a.shape))
        }
        if b.requiresGrad {
            b.accumulateGrad(reduceBroadcastGrad(Tensor(shape: shape, storage: broadcastBinary(MulRule.self, g, a, shape)), to: b.shape))
        }
    }
}

public func div(_ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShape(a.shape, b.shape, "div")
    let out = broadcastBinary(DivRule.self, a, b, shape)
    return .result(shape: shape, storage: out, inputs: [a, b]) { g in
        // d(a/b)/da = 1/b, d(a/b)/db = -(a/b)/b
        let gOverB = Tensor(shape: shape, storage: broadcastBinary(DivRule.self, g, b, shape))
        if a.requiresGrad { a.accumulateGrad(reduceBroadcastGrad(gOverB, to: a.shape)) }
        if b.requiresGrad {
            let q = Tensor(shape: shape, storage: out)
            let gb = Tensor(shape: shape, storage: broadcastBinary(MulRule.self, gOverB, q, shape))
            b.accumulateGrad(reduceBroadcastGrad(mulScalar(gb, -1), to: b.shape))
        }
    }
}

/// x · s for a scalar s.
public func mulScalar(_ x: Tensor, _ s: Float) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    let px = x.pointer, po = out.pointer
    for i in 0..<x.count { po[i] = px[i] * s }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        if x.requiresGrad { addScaledInPlace(x.gradPointer(), g.pointer, s, x.count) }
    }
}

/// x + s for a scalar s.
public func addScalar(_ x: Tensor, _ s: Float) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    let px = x.pointer, po = out.pointer
    for i in 0..<x.count { po[i] = px[i] + s }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in x.accumulateGrad(g) }
}

/// e^x elementwise.
public func exp(_ x: Tensor) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    let px = x.pointer, po = out.pointer
    for i in 0..<x.count { po[i] = fastExp(px[i]) }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        let gx = x.gradPointer(), pg = g.pointer, py = out.pointer
        for i in 0..<x.count { gx[i] += pg[i] * py[i] }
    }
}

/// Natural logarithm elementwise.
public func log(_ x: Tensor) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    let px = x.pointer, po = out.pointer
    for i in 0..<x.count { po[i] = Foundation.log(px[i]) }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        let gx = x.gradPointer(), pg = g.pointer
        for i in 0..<x.count { gx[i] += pg[i] / px[i] }
    }
}

/// Square root elementwise.
public func sqrt(_ x: Tensor) -> Tensor {
    let out = TensorStorage(uninitializedCount: x.count)
    let px = x.pointer, po = out.pointer
    for i in 0..<x.count { po[i] = px[i].squareRoot() }
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        let gx = x.gradPointer(), pg = g.pointer
        for i in 0..<x.count { gx[i] += pg[i] * 0.5 / po[i] }
    }
}

public func + (a: Tensor, b: Tensor) -> Tensor { add(a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { sub(a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { mul(a, b) }
public func / (a: Tensor, b: Tensor) -> Tensor { div(a, b) }
public func + (a: Tensor, s: Float) -> Tensor { addScalar(a, s) }
public func + (s: Float, a: Tensor) -> Tensor { addScalar(a, s) }
public func - (a: Tensor, s: Float) -> Tensor { addScalar(a, -s) }
public func - (s: Float, a: Tensor) -> Tensor { addScalar(mulScalar(a, -1), s) }
public func * (a: Tensor, s: Float) -> Tensor { mulScalar(a, s) }
public func * (s: Float, a: Tensor) -> Tensor { mulScalar(a, s) }
public func / (a: Tensor, s: Float) -> Tensor { mulScalar(a, 1 / s) }
public prefix func - (a: Tensor) -> Tensor { mulScalar(a, -1) }
