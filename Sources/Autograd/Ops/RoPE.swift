import Foundation

// Rotary position embedding, Hugging Face convention (`rotate_half`): the first and second halves of
// each head dimension form the rotated pairs, with inverse frequencies base^(−2i/D).

/// Rotates x [B, T, H, D] by position. `positions` has T entries (shared across the batch) or B·T.
public func rope(_ x: Tensor, positions: [Int], base: Float = 10_000) -> Tensor {
    precondition(x.rank == 4, "rope: input must be [batch, seq, heads, headDim], got \(x.shape)")
    let (b, t, h, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(d % 2 == 0, "rope: head dimension \(d) must be even")
    precondition(positions.count == t || positions.count == b * t,
                 "rope: \(positions.count) positions for batch \(b) × sequence \(t)")
    let half = d / 2
    // cos/sin tables per (position row, i), computed in double precision.
    let tableRows = positions.count
    var cosT = [Float](repeating: 0, count: tableRows * half), sinT = cosT
    for (r, p) in positions.enumerated() {
        for i in 0..<half {
            let angle = Double(p) * Foundation.pow(Double(base), -2 * Double(i) / Double(d))
            cosT[r * half + i] = Float(Foundation.cos(angle))
            sinT[r * half + i] = Float(Foundation.sin(angle))
        }
    }
    /// o1 = x1·cos − sign·x2·sin, o2 = x2·cos + sign·x1·sin (sign −1 applies the inverse rotation).
    func rotate(_ src: ConstFloatPtr, _ dst: FloatPtr, sign: Float, accumulate: Bool) {
        cosT.withUnsafeBufferPointer { cs in
            sinT.withUnsafeBufferPointer { sn in
                for bi in 0..<b {
                    for ti in 0..<t {
                        let row = (tableRows == t ? ti : bi * t + ti) * half
                        let c = cs.baseAddress! + row, s = sn.baseAddress! + row
                        for hi in 0..<h {
                            let o = ((bi * t + ti) * h + hi) * d
                            let x1 = src + o, x2 = src + o + half, y1 = dst + o, y2 = dst + o + half
                            if accumulate {
                                for i in 0..<half {
                                    y1[i] += x1[i] * c[i] - sign * x2[i] * s[i]
                                    y2[i] += x2[i] * c[i] + sign * x1[i] * s[i]
                                }
                            } else {
                                for i in 0..<half {
                                    y1[i] = x1[i] * c[i] - sign * x2[i] * s[i]
                                    y2[i] = x2[i] * c[i] + sign * x1[i] * s[i]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let out = TensorStorage(uninitializedCount: x.count)
    rotate(x.pointer, out.pointer, sign: 1, accumulate: false)
    return .result(shape: x.shape, storage: out, inputs: [x]) { g in
        // A rotation's transpose is the rotation by −angle.
        rotate(g.pointer, x.gradPointer(), sign: -1, accumulate: true)
    }
}
