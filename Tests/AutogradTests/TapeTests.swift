import TestSupport
import XCTest
@testable import Autograd

final class TapeTests: XCTestCase {
    override func setUp() { _ = logBLASOnce }

    func testReusedInputAccumulatesBothPaths() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = sum(x * x + x)  // dy/dx = 2x + 1
        y.backward()
        XCTAssertEqual(x.grad?.toArray(), [3, 5, 7])
    }

    func testGradientsAccumulateAcrossBackwardCallsUntilZeroed() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        sum(x * 3).backward()
        sum(x * 3).backward()
        XCTAssertEqual(x.grad?.toArray(), [6, 6])
        x.zeroGrad()
        XCTAssertNil(x.grad)
    }

    func testNoGradScopeRecordsNothing() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let y = withoutGrad { x * 2 }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
        XCTAssertTrue((x * 2).requiresGrad)
    }

    func testFrozenInputsGetNoGradient() {
        let w = Tensor([1, 2], shape: [2], requiresGrad: false)
        let x = Tensor([3, 4], shape: [2], requiresGrad: true)
        sum(w * x).backward()
        XCTAssertNil(w.grad)
        XCTAssertEqual(x.grad?.toArray(), [1, 2])
    }

    func testGraphIsReleasedAfterBackward() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        weak var intermediate: Tensor?
        var loss: Tensor?
        do {
            let h = exp(x)
            intermediate = h
            loss = sum(h)
        }
        XCTAssertNotNil(intermediate, "the loss's tape keeps intermediates alive")
        loss!.backward()
        loss = nil
        XCTAssertNil(intermediate, "backward must release the recorded graph")
    }

    /// The checker itself must catch a wrong backward rule, or passing checks mean nothing.
    func testGradCheckRejectsAWrongBackward() {
        let x = param([5], seed: 1)
        let report = checkGradients(wrt: [x]) {
            let out = TensorStorage(uninitializedCount: x.count)
            for i in 0..<x.count { out.pointer[i] = x.pointer[i] * x.pointer[i] }
            return .result(shape: x.shape, storage: out, inputs: [x]) { g in
                for i in 0..<x.count { x.gradPointer()[i] += g.pointer[i] * x.pointer[i] }  // should be 2x
            }
        }
        XCTAssertFalse(report.passed, "\(report)")
    }
}
