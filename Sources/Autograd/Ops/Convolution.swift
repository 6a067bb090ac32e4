// 2-D convolution over channels-last images as im2col + one matmul: the patch extraction is its own
// op (backward: col2im, scatter-add), the product is `linear`, so only the data movement is new.

/// The K×K neighbourhoods of x [B, H, W, C] at stride s with zero padding p, one row per output
/// pixel: [B, Ho·Wo, K·K·C] in (ky, kx, c) order, so each tap copies C contiguous channels.
/// Ho = (H + 2p − K) / s + 1, likewise Wo.
public func convolutionPatches(_ x: Tensor, kernel k: Int, stride s: Int, padding p: Int) -> Tensor {
    precondition(x.rank == 4, "convolutionPatches: expected [B, H, W, C], got \(x.shape)")
    let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(k >= 1 && s >= 1 && p >= 0 && h + 2 * p >= k && w + 2 * p >= k,
                 "convolutionPatches: kernel \(k), stride \(s), padding \(p) do not fit \(h)×\(w) images")
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1)
    let row = c * k * k
    let out = TensorStorage(uninitializedCount: b * ho * wo * row)
    // Visits every (output pixel, ky, kx) once; `body` gets the offset of its C values in the patch
    // row and in the input, or nil where the kernel reads padding.
    @inline(__always) func forEachTap(_ body: (Int, Int?) -> Void) {
        for n in 0..<b {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    let base = ((n * ho + oy) * wo + ox) * row
                    for ky in 0..<k {
                        let iy = oy * s - p + ky
                        for kx in 0..<k {
                            let ix = ox * s - p + kx
                            let inside = iy >= 0 && iy < h && ix >= 0 && ix < w
                            body(base + (ky * k + kx) * c, inside ? ((n * h + iy) * w + ix) * c : nil)
                        }
                    }
                }
            }
        }
    }
    let xp = x.pointer, op = out.pointer
    forEachTap { o, i in
        if let i { (op + o).update(from: xp + i, count: c) } else { (op + o).update(repeating: 0, count: c) }
    }
    return .result(shape: [b, ho * wo, row], storage: out, inputs: [x]) { g in
        let gx = x.gradPointer(), gp = g.pointer
        forEachTap { o, i in if let i { addInPlace(gx + i, gp + o, c) } }
    }
}

/// y [B, Ho, Wo, out] = conv(x [B, H, W, C], weight [out, C, K, K]) + bias, PyTorch's `Conv2d`
/// semantics (cross-correlation, zero padding) on channels-last tensors.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
    precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3] && x.rank == 4 && weight.shape[1] == x.shape[3],
                 "conv2d: weight \(weight.shape) (expected [out, \(x.rank == 4 ? x.shape[3] : -1), K, K]) for input \(x.shape)")
    let (out, k) = (weight.shape[0], weight.shape[2])
    let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (ho, wo) = ((h + 2 * padding - k) / stride + 1, (w + 2 * padding - k) / stride + 1)
    let patches: Tensor
    if stride == k && padding == 0 && h % k == 0 && w % k == 0 {
        // Non-overlapping patches (a ViT's patch embedding) are a pure reshuffle:
        // [B, Ho, K, Wo, K, C] → [B, Ho, Wo, K, K, C].
        patches = x.reshaped([b, ho, k, wo, k, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([b, ho * wo, k * k * c])
    } else {
        patches = convolutionPatches(x, kernel: k, stride: stride, padding: padding)
    }
    // [out, C, K, K] → [out, K, K, C], the patches' order (a copy of a small weight per call).
    let flat = weight.permuted([0, 2, 3, 1]).reshaped([out, weight.count / out])
    return linear(patches, weight: flat, bias: bias).reshaped([b, ho, wo, out])
}
