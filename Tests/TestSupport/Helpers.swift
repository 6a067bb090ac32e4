import Foundation
import XCTest
import Autograd

/// A leaf with N(0,1) entries (scaled) that requires grad, from a fixed seed.
public func param(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
    var rng = RNG(seed: seed)
    let t = Tensor.randomNormal(shape, std: scale, rng: &rng, requiresGrad: true)
    for i in 0..<t.count { t.pointer[i] += offset }
    return t
}

/// Fails the test unless backward gradients match finite differences.
public func assertGradients(_ inputs: [Tensor], eps: Float = 1e-3, atol: Double = 1e-3, rtol: Double = 1e-2,
                     file: StaticString = #filePath, line: UInt = #line, _ f: () -> Tensor) {
    let report = checkGradients(wrt: inputs, eps: eps, atol: atol, rtol: rtol, f)
    XCTAssertGreaterThan(report.checked, 0, file: file, line: line)
    XCTAssertTrue(report.passed, "\(report)", file: file, line: line)
}

public func assertClose(_ a: [Float], _ b: [Float], tol: Float = 1e-5, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "count differs \(message)", file: file, line: line)
    for i in 0..<min(a.count, b.count) where abs(a[i] - b[i]) > tol * max(1, abs(b[i])) {
        XCTFail("element \(i): \(a[i]) vs \(b[i]) \(message)", file: file, line: line)
        return
    }
}

/// Logs the BLAS kernel once per test process, so every test log says what it ran on.
public let logBLASOnce: Void = { print("[tests] \(BLAS.summary)") }()

/// An executable of the package (`vla`, `pretrain-action`, …) built beside this test bundle.
public func builtExecutable(_ name: String) -> URL {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name)
}

/// The `vla` executable built beside this test bundle.
public var vlaExecutable: URL { builtExecutable("vla") }

public var missingVLAMessage: String { "no vla executable beside the tests at \(vlaExecutable.path): build with `swift build --build-tests`" }

/// Runs this test binary again on one test method with extra environment, returning its exit
/// status and output: for tests that need a separate process (a crash, a resume after exit).
public func startTestInChildProcess(_ test: String, environment: [String: String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    process.arguments = [test]
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

public func runTestInChildProcess(_ test: String, environment: [String: String]) throws -> (status: Int32, output: String) {
    try runProcess(URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(), [test], environment: environment)
}

/// Runs `executable` to completion with extra `environment`; returns its exit status and its
/// standard output and error together.
public func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}
