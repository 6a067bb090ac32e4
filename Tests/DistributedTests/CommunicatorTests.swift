import Autograd
import Foundation
import TestSupport
import XCTest
@testable import Distributed

final class CommunicatorTests: XCTestCase {
    /// Windows of the concatenated segments cover every element once, in order, whatever the sizes.
    func testBucketsCoverEverySegmentOnceInOrder() throws {
        var storage: [[Float]] = [[0, 1, 2], [], [3, 4, 5, 6, 7, 8, 9], [10, 11]]
        var windows: [[Float]] = []
        try withSegments(&storage) { segments in
            try inBuckets(segments, 4) { window in
                windows.append(Array(window))
                for i in window.indices { window[i] *= -1 }
            }
        }
        XCTAssertEqual(windows, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
        XCTAssertEqual(storage, [[-0, -1, -2], [], [-3, -4, -5, -6, -7, -8, -9], [-10, -11]], "results land where they came from")
    }

    /// Without mpirun, the job is one process and every collective leaves its arguments as they are.
    func testOneProcessWithoutMPI() throws {
        try XCTSkipIf(Job.launchedByMPI, "this test is about running without mpirun")
        let job = try Job.communicator()
        XCTAssertTrue(job is SingleProcess)
        XCTAssertEqual([job.rank, job.size], [0, 1])
        let p = param([3], seed: 1)
        p.grad = Tensor([1, 2, 3], shape: [3])
        try job.averageGradients([p])
        XCTAssertEqual(p.grad?.toArray(), [1, 2, 3])
        XCTAssertEqual(try job.broadcast(Data("abc".utf8)), Data("abc".utf8))
        XCTAssertEqual(try job.allReduce([2, 5], .sum), [2, 5])
        try job.requireIdentical([p], "anything")
    }

    /// Two ranks (this test binary again, under mpirun) check each collective from their side.
    func testCollectivesOnTwoRanks() throws {
        let mpirun = try MPIJobs.mpirun()
        let dir = try temporaryFolder("collectives")
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let (status, output) = try MPIJobs.run(mpirun, MPIJobs.localArguments(np: 2) + ["-x", "INSTRUCTVLA_COLLECTIVES_DIR", binary.path,
                                                                                        "DistributedTests.CommunicatorTests/testChildRankOfTwo"],
                                               log: dir.appendingPathComponent("log.txt"), environment: ["INSTRUCTVLA_COLLECTIVES_DIR": dir.path])
        XCTAssertEqual(status, 0, output)
        for rank in 0..<2 {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("rank\(rank).done").path), "rank \(rank) did not finish:\n\(output)")
        }
    }

    /// One rank's side of `testCollectivesOnTwoRanks` (does nothing unless started by it).
    func testChildRankOfTwo() throws {
        guard let dir = ProcessInfo.processInfo.environment["INSTRUCTVLA_COLLECTIVES_DIR"], Job.launchedByMPI else { return }
        let job = try Job.communicator()
        defer { job.finalize() }
        XCTAssertEqual(job.size, 2)
        let r = Float(job.rank)

        XCTAssertEqual(try job.allReduce([Double(r + 1), -Double(r)], .sum), [3, -1])
        XCTAssertEqual(try job.allReduce([Double(r + 1), -Double(r)], .max), [2, 0])

        // Buckets of 4 floats split tensors and span them; b has a gradient on rank 1 only (rank 0
        // counts zeros), c on neither (stays without one).
        let (a, b, c, d) = (param([3], seed: 1), param([7], seed: 2), param([2], seed: 3), param([5], seed: 4))
        a.grad = Tensor([1, 2, 3].map { $0 + 2 * r }, shape: [3])
        if job.rank == 1 { b.grad = Tensor([Float](repeating: 4, count: 7), shape: [7]) }
        d.grad = Tensor((0..<5).map { Float($0) * (r + 1) }, shape: [5])
        try job.averageGradients([a, b, c, d], bucketSize: 4)
        XCTAssertEqual(a.grad?.toArray(), [2, 3, 4])
        XCTAssertEqual(b.grad?.toArray(), [Float](repeating: 2, count: 7))
        XCTAssertNil(c.grad)
        XCTAssertEqual(d.grad?.toArray(), [0, 1.5, 3, 4.5, 6])

        let mine = Tensor((0..<6).map { Float($0) + 10 * r }, shape: [6])
        try job.broadcast([mine])
        XCTAssertEqual(mine.toArray(), (0..<6).map(Float.init), "rank 0's values everywhere")
        let recipe = Data("task: pretrain-action\n".utf8)
        XCTAssertEqual(try job.broadcast(job.isRoot ? recipe : Data()), recipe)

        try job.requireIdentical([mine], "the broadcast tensor")
        XCTAssertThrowsError(try job.requireIdentical([Tensor([r], shape: [1])], "a rank-dependent tensor")) { error in
            XCTAssertTrue("\(error)".contains("a rank-dependent tensor differs between rank 0 and rank 1 of 2"), "\(error)")
        }
        try job.barrier()
        XCTAssertGreaterThan(job.communicationSeconds, 0)
        _ = FileManager.default.createFile(atPath: "\(dir)/rank\(job.rank).done", contents: nil)
    }
}

private func withSegments(_ arrays: inout [[Float]], _ body: ([UnsafeMutableBufferPointer<Float>]) throws -> Void) rethrows {
    var pointers: [UnsafeMutableBufferPointer<Float>] = []
    for i in arrays.indices {
        let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: arrays[i].count)
        _ = p.initialize(from: arrays[i])
        pointers.append(p)
    }
    defer { pointers.forEach { $0.deallocate() } }
    try body(pointers)
    for i in arrays.indices { arrays[i] = Array(pointers[i]) }
}
