import XCTest
@testable import Autograd

/// A leaf with N(0,1) entries (scaled) that requires grad, from a fixed seed.
func param(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
    var rng = RNG(seed: seed)
    let t = Tensor.randomNormal(shape, std: scale, rng: &rng, requiresGrad: true)
    for i in 0..<t.count { t.pointer[i] += offset }
    return t
}

/// Fails the test unless backward gradients match finite differences.
func assertGradients(_ inputs: [Tensor], eps: Float = 1e-3, atol: Double = 1e-3, rtol: Double = 1e-2,
                     file: StaticString = #filePath, line: UInt = #line, _ f: () -> Tensor) {
    let report = checkGradients(wrt: inputs, eps: eps, atol: atol, rtol: rtol, f)
    XCTAssertGreaterThan(report.checked, 0, file: file, line: line)
    XCTAssertTrue(report.passed, "\(report)", file: file, line: line)
}

func assertClose(_ a: [Float], _ b: [Float], tol: Float = 1e-5, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "count differs \(message)", file: file, line: line)
    for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > tol * max(1, abs(b[i])) {
        XCTFail("element \(i): \(a[i]) vs \(b[i]) \(message)", file: file, line: line)
        return
    }
}

/// Logs the BLAS kernel once per test process, so every test log says what it ran on.
let logBLASOnce: Void = { print("[AutogradTests] \(BLAS.summary)") }()
