import Checkpoint
import Foundation
import TestSupport
import XCTest
@testable import Training

/// Two hosts on this machine: network namespaces joined by a veth pair. mpirun runs in the first and
/// starts its daemons in both through an "ssh" that is `ip netns exec`; ranks talk TCP over the pair.
final class MultiHostTests: XCTestCase {
    struct Hosts {
        let names: [String]
        let subnet: String
        let agent: URL
        let hostfile: URL
    }

    /// Creates the namespaces, or skips saying why it cannot (not root, no iproute2, no permission).
    func makeHosts(in dir: URL) throws -> Hosts {
        try XCTSkipUnless(getuid() == 0, "network namespaces need root (ip netns)")
        guard let ip = Self.ip else { throw XCTSkip("no ip command (Debian's iproute2) to make network namespaces with") }
        let tag = getpid() % 100_000, third = getpid() % 250
        let (names, links, subnet) = (["ivla\(tag)a", "ivla\(tag)b"], ["iv\(tag)a", "iv\(tag)b"], "10.213.\(third).0/24")
        let (first, _) = try runProcess(ip, ["netns", "add", names[0]])
        if first != 0 { throw XCTSkip("cannot create network namespaces here (ip netns add failed)") }
        var commands: [[String]] = [["netns", "add", names[1]], ["link", "add", links[0], "type", "veth", "peer", "name", links[1]]]
        for i in 0..<2 {
            commands += [["link", "set", links[i], "netns", names[i]], ["-n", names[i], "addr", "add", "10.213.\(third).\(i + 1)/24", "dev", links[i]],
                         ["-n", names[i], "link", "set", links[i], "up"], ["-n", names[i], "link", "set", "lo", "up"]]
        }
        for arguments in commands {
            let (status, output) = try runProcess(ip, arguments)
            guard status == 0 else {
                removeHosts(names)
                throw CommunicatorTestError("ip \(arguments.joined(separator: " ")) failed: \(output)")
            }
        }
        let agent = dir.appendingPathComponent("netns-ssh")
        try """
        #!/bin/sh
        # mpirun's remote shell for namespace "hosts": runs the command in the namespace named like the host.
        host="$1"; shift
        exec \(ip.path) netns exec "$host" /bin/sh -c "$*"
        """.write(to: agent, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: agent.path)
        let hostfile = dir.appendingPathComponent("hostfile")
        try names.map { "\($0) slots=1\n" }.joined().write(to: hostfile, atomically: true, encoding: .utf8)
        return Hosts(names: names, subnet: subnet, agent: agent, hostfile: hostfile)
    }

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].map(URL.init(fileURLWithPath:))
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }

    func removeHosts(_ names: [String]) {
        for name in names { _ = try? runProcess(Self.ip!, ["netns", "del", name]) }
    }

    /// The tiny stage-1 recipe trains as one rank per namespace, over TCP between them.
    func testTwoNamespacesTrainStage1OverTCP() throws {
        let dir = try temporaryFolder("hosts")
        let mpirun = try MPIJobs.mpirun(), executable = try MPIJobs.executable("pretrain-action")
        let recipe = try DataParallelTrainingTests.fixture.get()
        let hosts = try makeHosts(in: dir)
        defer { removeHosts(hosts.names) }
        let run = dir.appendingPathComponent("run")
        let arguments = ["netns", "exec", hosts.names[0], mpirun.path, "-np", "2", "--hostfile", hosts.hostfile.path, "--display-map",
                         "--mca", "plm_rsh_agent", hosts.agent.path, "--mca", "btl", "tcp,self",
                         "--mca", "btl_tcp_if_include", hosts.subnet, "--mca", "oob_tcp_if_include", hosts.subnet,
                         // rtc_hwloc_vmhole none: the daemons do not map a shared hwloc topology into an address-space hole, which
                         // made orted segfault in hwloc_shmem_topology_write about once in seven runs (Open MPI 4.1.4)
                         "--mca", "rtc_hwloc_vmhole", "none", "--bind-to", "none", "-x", "INSTRUCTVLA_THREADS", "--wdir", PythonReference.repoRoot.path,
                         executable.path, recipe.path, "--run-dir", run.path, "--set", "train.steps=4", "--set", "train.save_every=4"]
        let (status, output) = try MPIJobs.run(Self.ip!, arguments, log: dir.appendingPathComponent("job.log"))
        XCTAssertEqual(status, 0, output)
        for name in hosts.names { XCTAssertTrue(output.contains("Data for node: \(name)"), "no rank mapped to host \(name):\n\(output)") }
        XCTAssertTrue(output.contains("data parallel: 2 processes (MPI)"), output)
        let state = try TrainerState.read(from: run.appendingPathComponent("step-000004/trainer_state.json"))
        XCTAssertEqual(state.worldSize, 2)
        XCTAssertEqual(state.samplesSeen, 32)
        let losses = try MetricsLog.read(run.appendingPathComponent("metrics.jsonl")).compactMap { $0.values["loss"] }
        XCTAssertEqual(losses.count, 4)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
    }
}
