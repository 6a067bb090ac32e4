import COpenBLAS

// Pointer-level kernels shared by the ops. Each loop walks raw pointers so that it vectorises at -O;
// reductions use explicit SIMD16 accumulators (one AVX-512 register), since Swift will not reorder a
// plain `+=` sum.

typealias FloatPtr = UnsafeMutablePointer<Float>
typealias ConstFloatPtr = UnsafePointer<Float>

/// Row-major C = alpha · op(A) · op(B) + beta · C, with op(A) M×K and op(B) K×N.
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
           alpha: Float = 1, a: ConstFloatPtr, lda: Int, b: ConstFloatPtr, ldb: Int,
           beta: Float = 0, c: FloatPtr, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {  // BLAS leaves C untouched when K = 0 only for beta = 1; make it the defined result.
        if beta != 1 { for i in 0..<m { scaleInPlace(c + i * ldc, beta, n) } }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

@inline(__always) func loadVector(_ p: ConstFloatPtr) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always) func storeVector(_ v: SIMD16<Float>, _ p: FloatPtr) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Applies `f` to n floats, 16 at a time; the tail goes through the same SIMD function on a padded copy.
@inline(__always)
func mapVectors(_ n: Int, _ x: ConstFloatPtr, _ out: FloatPtr, _ f: (SIMD16<Float>) -> SIMD16<Float>) {
    var i = 0
    while i + 16 <= n { storeVector(f(loadVector(x + i)), out + i); i += 16 }
    if i < n {
        var tail = SIMD16<Float>(repeating: 0)
        for j in 0..<(n - i) { tail[j] = x[i + j] }
        let r = f(tail)
        for j in 0..<(n - i) { out[i + j] = r[j] }
    }
}

/// Two-input version of `mapVectors`.
@inline(__always)
func mapVectors(_ n: Int, _ x: ConstFloatPtr, _ y: ConstFloatPtr, _ out: FloatPtr,
                _ f: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>) {
    var i = 0
    while i + 16 <= n { storeVector(f(loadVector(x + i), loadVector(y + i)), out + i); i += 16 }
    if i < n {
        var tx = SIMD16<Float>(repeating: 0), ty = SIMD16<Float>(repeating: 0)
        for j in 0..<(n - i) { tx[j] = x[i + j]; ty[j] = y[i + j] }
        let r = f(tx, ty)
        for j in 0..<(n - i) { out[i + j] = r[j] }
    }
}

/// dst += src
@inline(__always) func addInPlace(_ dst: FloatPtr, _ src: ConstFloatPtr, _ n: Int) {
    for i in 0..<n { dst[i] += src[i] }
}

/// dst += alpha · src
@inline(__always) func addScaledInPlace(_ dst: FloatPtr, _ src: ConstFloatPtr, _ alpha: Float, _ n: Int) {
    for i in 0..<n { dst[i] += alpha * src[i] }
}

@inline(__always) func scaleInPlace(_ x: FloatPtr, _ alpha: Float, _ n: Int) {
    for i in 0..<n { x[i] *= alpha }
}

/// Σ x[i], accumulated in 16 lanes.
@inline(__always) func sum(_ x: ConstFloatPtr, _ n: Int) -> Float {
    var acc = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += loadVector(x + i); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// Σ x[i]·y[i], accumulated in 16 lanes.
@inline(__always) func dot(_ x: ConstFloatPtr, _ y: ConstFloatPtr, _ n: Int) -> Float {
    var acc = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= n { acc.addProduct(loadVector(x + i), loadVector(y + i)); i += 16 }
    var s = acc.sum()
    while i < n { s += x[i] * y[i]; i += 1 }
    return s
}

@inline(__always) func maxElement(_ x: ConstFloatPtr, _ n: Int) -> Float {
    var acc = SIMD16<Float>(repeating: -.infinity)
    var i = 0
    while i + 16 <= n { acc = pointwiseMax(acc, loadVector(x + i)); i += 16 }
    var m = acc.max()
    while i < n { m = Swift.max(m, x[i]); i += 1 }
    return m
}

/// e^x for 16 lanes: Cephes-style range reduction x = n·ln2 + r and a degree-6 polynomial for e^r;
/// relative error about 2e-7 over the float range, exactly 0 below -87.3 (so e^-inf = 0 for masks).
@inline(__always) func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let clamped = x.clamped(lowerBound: SIMD16(repeating: -87.3), upperBound: SIMD16(repeating: 88.7))
    let n = (clamped * 1.44269504088896341).rounded(.toNearestOrEven)
    let r = clamped - n * 0.693359375 + n * 2.12194440e-4
    var p = SIMD16<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    let bits = (SIMD16<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
    let scale = unsafeBitCast(bits, to: SIMD16<Float>.self)
    return (p * scale).replacing(with: 0, where: x .< -87.3)
}

/// 1 / (1 + e^-x)
@inline(__always) func sigmoid(_ x: SIMD16<Float>) -> SIMD16<Float> {
    1 / (1 + exp(-x))
}

/// tanh(x) = 1 - 2 / (e^{2x} + 1), exact at the saturated ends.
@inline(__always) func tanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
    1 - 2 / (exp(2 * x) + 1)
}
