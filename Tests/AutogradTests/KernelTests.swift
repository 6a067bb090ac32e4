import Foundation
import TestSupport
import XCTest
@testable import Autograd

/// The hand-written transcendental kernels against libm over their whole useful range.
final class KernelTests: XCTestCase {
    func testFastExpRelativeErrorAndLimits() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88.3 {
            let rel = abs(Double(fastExp(x)) - Foundation.exp(Double(x))) / Foundation.exp(Double(x))
            worst = max(worst, rel)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 5e-7, "fastExp relative error")
        XCTAssertEqual(fastExp(-.infinity), 0)
        XCTAssertEqual(fastExp(-100), 0)
        XCTAssertEqual(fastExp(0), 1)
        XCTAssertTrue(fastExp(88.7).isFinite)
    }

    func testSigmoidAndTanhAbsoluteError() {
        var x: Float = -30
        while x < 30 {
            XCTAssertEqual(Double(fastSigmoid(x)), 1 / (1 + Foundation.exp(-Double(x))), accuracy: 2e-7)
            XCTAssertEqual(Double(fastTanh(x)), Foundation.tanh(Double(x)), accuracy: 5e-7)
            x += 0.031
        }
    }

    func testReductionsOnOddLengths() {
        for n in [1, 15, 16, 17, 100] {
            let v = (0..<n).map { Float($0 % 7) - 3.5 }
            v.withUnsafeBufferPointer { p in
                XCTAssertEqual(sum(p.baseAddress!, n), v.reduce(0, +), accuracy: 1e-4)
                XCTAssertEqual(dot(p.baseAddress!, p.baseAddress!, n), v.map { $0 * $0 }.reduce(0, +), accuracy: 1e-3)
                XCTAssertEqual(maxElement(p.baseAddress!, n), v.max()!)
            }
        }
    }
}
