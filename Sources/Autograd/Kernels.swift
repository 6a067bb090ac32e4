import COpenBLAS
import Dispatch
import Synchronization

// Pointer-level kernels shared by the ops. Each loop walks raw pointers so that it vectorises at -O;
// reductions use explicit SIMD16 accumulators (one AVX-512 register), since Swift will not reorder a
// plain `+=` sum.

typealias FloatPtr = UnsafeMutablePointer<Float>
typealias ConstFloatPtr = UnsafePointer<Float>

/// Row-major C = alpha · op(A) · op(B) + beta · C, with op(A) M×K and op(B) K×N.
///
/// OpenBLAS runs single-threaded (see `BLAS`); large products are split here into one block of
/// C's rows (or columns, when M is small) per core. OpenBLAS's own threads busy-wait for work, which
/// on a 2-core machine shared with anything else made small-model steps up to 10× slower.
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
           alpha: Float = 1, a: ConstFloatPtr, lda: Int, b: ConstFloatPtr, ldb: Int,
           beta: Float = 0, c: FloatPtr, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {  // BLAS leaves C untouched when K = 0 only for beta = 1; make it the defined result.
        if beta != 1 { for i in 0..<m { scaleInPlace(c + i * ldc, beta, n) } }
        return
    }
    gemmFlopCounter.add(2 * m * n * k, ordering: .relaxed)
    let workers = BLAS.workers
    guard workers > 1, m * n * k >= sgemmSplitThreshold, !insideParallelRegion else {
        sgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    }
    let byRows = m >= n
    let extent = byRows ? m : n
    let parts = min(workers, max(extent / 16, 1))
    let (pa, pb, pc) = (UncheckedSendable(a), UncheckedSendable(b), UncheckedSendable(c))
    DispatchQueue.concurrentPerform(iterations: parts) { w in
        let start = extent * w / parts, count = extent * (w + 1) / parts - start
        if byRows {  // rows of op(A) are rows of A, or columns when A is transposed
            sgemmSerial(transA, transB, count, n, k, alpha, pa.value + (transA ? start : start * lda), lda, pb.value, ldb,
                        beta, pc.value + start * ldc, ldc)
        } else {  // columns of op(B) are columns of B, or rows when B is transposed
            sgemmSerial(transA, transB, m, count, k, alpha, pa.value, lda, pb.value + (transB ? start * ldb : start), ldb,
                        beta, pc.value + start, ldc)
        }
    }
}

/// Floating-point operations of every sgemm so far (2·M·N·K each), for benchmarks' fraction of peak.
let gemmFlopCounter = Atomic<Int>(0)

/// Products below this many multiply-adds run on the calling thread: splitting costs more than it saves.
let sgemmSplitThreshold = 1 << 20

@inline(__always)
private func sgemmSerial(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: ConstFloatPtr, _ lda: Int,
                         _ b: ConstFloatPtr, _ ldb: Int, _ beta: Float, _ c: FloatPtr, _ ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

@inline(__always) func loadVector(_ p: ConstFloatPtr) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
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
    while i + 16 <= n {
        let v = loadVector(x + i)
        acc.replace(with: v, where: v .> acc)
        i += 16
    }
    var m = acc.max()
    while i < n { m = x[i] > m ? x[i] : m; i += 1 }
    return m
}

// Transcendentals as scalar functions: in a plain loop over pointers LLVM vectorises them to the
// full vector width (measured 12x faster than the same math written on SIMD16 values, whose
// clamps and selects Swift lowers lane by lane).

/// e^x: Cephes-style range reduction x = n·ln2 + r and a degree-6 polynomial for e^r; relative
/// error about 2e-7, exactly 0 below -87.3 (so e^-inf = 0 for masked scores), saturating at e^88.3.
@inline(__always) func fastExp(_ x: Float) -> Float {
    let c = x < -87.3 ? -87.3 : (x > 88.3 ? 88.3 : x)  // keeps 2ⁿ a normal float
    // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
    let magic: Float = 12_582_912
    let shifted = c * 1.44269504088896341 + magic
    let n = shifted - magic
    let r = c - n * 0.693359375 + n * 2.12194440e-4
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    let exponent = (Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: magic.bitPattern) &+ 127) &<< 23
    let y = p * Float(bitPattern: UInt32(bitPattern: exponent))
    return x < -87.3 ? 0 : y
}

/// 1 / (1 + e^-x)
@inline(__always) func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// tanh(x) = 1 − 2 / (e^{2x} + 1), exact at the saturated ends.
@inline(__always) func fastTanh(_ x: Float) -> Float { 1 - 2 / (fastExp(2 * x) + 1) }
