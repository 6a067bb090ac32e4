// swift-tools-version:6.0
import Foundation
import PackageDescription

// Numeric kernels are compiled with -O even in debug builds: unoptimised Swift loops over buffers run
// 30-400x slower (shared/reference/code-and-performance-anchors.md §2.4), which would make
// `swift test` crawl. Test code itself stays debug so assertions keep their full checks.
//
// Kernels are also compiled for the build machine's CPU (AVX2/AVX-512 lanes for the SIMD16 math);
// set INSTRUCTVLA_TARGET_CPU (e.g. "haswell", "x86-64") when binaries must run on other machines.
let targetCPU = ProcessInfo.processInfo.environment["INSTRUCTVLA_TARGET_CPU"] ?? "native"
let optimisedEvenInDebug: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    .unsafeFlags(["-target-cpu", targetCPU]),
]

let package = Package(
    name: "InstructVLA",
    products: [
        .library(name: "Autograd", targets: ["Autograd"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "Episodes", targets: ["Episodes"]),
        .library(name: "Distributed", targets: ["Distributed"]),
        .executable(name: "bench", targets: ["bench"]),
        .executable(name: "vla", targets: ["vla"]),
        .executable(name: "pretrain-vlm", targets: ["pretrain-vlm"]),
        .executable(name: "pretrain-action", targets: ["pretrain-action"]),
        .executable(name: "instruct-tune", targets: ["instruct-tune"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The policy server's websocket transport (NIOWebSocket: handshake, framing, size limits).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libhdf5-dev, libzstd-dev, zlib1g-dev, libopenmpi-dev; `make setup` installs them).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // Puts OpenBLAS on the right kernel before any Swift code runs (see openblas_runtime.c).
        .target(name: "OpenBLASRuntime", dependencies: ["COpenBLAS"]),

        .target(name: "Autograd", dependencies: ["COpenBLAS", "OpenBLASRuntime"], swiftSettings: optimisedEvenInDebug),
        .target(name: "Models", dependencies: ["Autograd", "Checkpoint"], swiftSettings: optimisedEvenInDebug),
        .target(name: "Checkpoint", dependencies: ["Autograd"], swiftSettings: optimisedEvenInDebug),
        // Registers HDF5 filter 32015 (zstd) in-process, so h5py + hdf5plugin files read without plugins.
        .target(name: "HDF5Zstd", dependencies: ["CHDF5", "CZstd"]),
        .target(name: "Episodes", dependencies: ["Autograd", "Checkpoint", "CHDF5", "HDF5Zstd"], swiftSettings: optimisedEvenInDebug),

        // Data-parallel jobs: the communicator the trainer uses (MPI under mpirun, one process otherwise).
        .target(name: "Distributed", dependencies: ["Autograd", "CMPI"], swiftSettings: optimisedEvenInDebug),
        .target(name: "Training", dependencies: ["Autograd", "Checkpoint", "Models", "Episodes", "Distributed", "CZlib", .product(name: "Yams", package: "Yams"),
                                                .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: optimisedEvenInDebug),
        // Serves a policy over the openpi websocket protocol (msgpack + numpy arrays).
        .target(name: "Serving", dependencies: ["Training", .product(name: "NIOCore", package: "swift-nio"),
                                               .product(name: "NIOPosix", package: "swift-nio"),
                                               .product(name: "NIOHTTP1", package: "swift-nio"),
                                               .product(name: "NIOWebSocket", package: "swift-nio")],
                swiftSettings: optimisedEvenInDebug),
        .executableTarget(name: "vla", dependencies: ["Training", "Serving", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "pretrain-vlm", dependencies: ["Training", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "pretrain-action", dependencies: ["Training", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "instruct-tune", dependencies: ["Training", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "bench", dependencies: ["Autograd", "Models", "Episodes", "Distributed"], path: "Benchmarks/bench"),

        // Shared test helpers: Python reference runner, gradient checks, child processes.
        .target(name: "TestSupport", dependencies: ["Autograd"], path: "Tests/TestSupport"),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TestSupport"], exclude: ["Parity"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Models", "TestSupport"], exclude: ["Interop"]),
        .testTarget(name: "EpisodesTests", dependencies: ["Episodes", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestSupport"], exclude: ["Interop"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Training", "Checkpoint", "TestSupport"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Training", "Episodes", "TestSupport"], exclude: ["Clients"]),
    ]
)
