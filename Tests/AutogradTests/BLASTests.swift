import Foundation
import TestSupport
import XCTest
@testable import Autograd

final class BLASTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    func testCoreIsNotAGenericFallbackOnAVXCPUs() throws {
        XCTAssertFalse(BLAS.core.isEmpty)
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        if cpuinfo.contains(" avx2") || cpuinfo.contains(" avx512f") {
            XCTAssertFalse(BLAS.coreIsGeneric, "generic kernel in use: \(BLAS.summary)")
        }
    }

    /// Runs this test binary again with OPENBLAS_CORETYPE unset and auto-detection treated as generic:
    /// the start-up check must re-execute the process on a fast kernel and say so.
    func testStartupCheckReexecutesOnAGenericKernel() throws {
        if ProcessInfo.processInfo.environment["INSTRUCTVLA_PRINT_BLAS"] != nil {
            print("BLAS-SUMMARY: \(BLAS.summary)")
            return
        }
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        guard cpuinfo.contains(" avx2") else { throw XCTSkip("CPU has no AVX2: nothing faster to switch to") }
        let (_, output) = try runTestInChildProcess("AutogradTests.BLASTests/testStartupCheckReexecutesOnAGenericKernel", environment: [
            "OPENBLAS_CORETYPE": "", "INSTRUCTVLA_OPENBLAS_ASSUME_GENERIC": "1", "INSTRUCTVLA_PRINT_BLAS": "1",
        ])
        let line = output.split(separator: "\n").first { $0.hasPrefix("BLAS-SUMMARY:") } ?? "no summary in: \(output.suffix(500))"
        let expected = cpuinfo.contains(" avx512f") ? "SkylakeX" : "Haswell"
        XCTAssertTrue(line.contains("re-executed with OPENBLAS_CORETYPE=\(expected)"), String(line))
        XCTAssertTrue(line.contains("OpenBLAS core \(expected)"), String(line))
    }

    /// sgemm through every transpose combination on odd shapes, against a naive double-precision product;
    /// the last two are above the split threshold, split by rows and by columns.
    func testSgemmMatchesNaiveProductOnOddShapes() {
        var rng = RNG(seed: 7)
        XCTAssertGreaterThanOrEqual(259 * 65 * 67, sgemmSplitThreshold)
        XCTAssertGreaterThanOrEqual(33 * 517 * 63, sgemmSplitThreshold)
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 1, 33), (31, 29, 1), (65, 63, 67), (130, 7, 129), (2, 257, 3), (259, 65, 67), (33, 517, 63)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = (0..<(m * k)).map { _ in rng.uniform() - 0.5 }
                    let b = (0..<(k * n)).map { _ in rng.uniform() - 0.5 }
                    var c = [Float](repeating: .nan, count: m * n)
                    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: transA ? m : k,
                              b: pb.baseAddress!, ldb: transB ? k : n, c: pc.baseAddress!, ldc: n)
                    } } }
                    for i in 0..<m {
                        for j in 0..<n {
                            var s: Double = 0
                            for p in 0..<k {
                                s += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
                            }
                            XCTAssertEqual(Double(c[i * n + j]), s, accuracy: 1e-5 * (1 + abs(s)),
                                           "\(m)x\(n)x\(k) transA \(transA) transB \(transB) at (\(i),\(j)) on \(BLAS.core)")
                        }
                    }
                }
            }
        }
    }
}
