import Autograd
import Foundation
import Models

// `make bench`: kernel and step throughput, each reported beside the sgemm peak measured in the
// same run, printed as a table and written to Benchmarks/results/latest.json (plus a dated copy).

struct Result: Codable {
    var name: String
    var unit: String
    var value: Double
    var fraction_of_peak: Double?
    var detail: String?
}

/// Median seconds per call of `body` over at least `minSeconds` (after one warm-up call).
func timeMedian(minSeconds: Double = 1.5, minRuns: Int = 5, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    let start = Date()
    while times.count < minRuns || Date().timeIntervalSince(start) < minSeconds {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    return times.sorted()[times.count / 2]
}

let arguments = CommandLine.arguments.dropFirst()
let quick = arguments.contains("--quick")
let outputDir = URL(fileURLWithPath: arguments.first { !$0.hasPrefix("--") } ?? "Benchmarks/results")
let minSeconds = quick ? 0.3 : 1.5

print("bench: \(BLAS.summary)")
var results: [Result] = []

// 1. sgemm on the shapes a d=256 transformer step runs (rows = batch·seq = 2048), and a square one.
var rng = RNG(seed: 0)
var peak = 0.0
for (m, n, k) in [(2048, 256, 256), (2048, 704, 256), (2048, 256, 704), (256, 256, 2048), (1024, 1024, 1024)] {
    let a = Tensor.randomNormal([m, k], rng: &rng), b = Tensor.randomNormal([n, k], rng: &rng)
    let seconds = timeMedian(minSeconds: minSeconds) { _ = withoutGrad { matmul(a, b, transposeB: true) } }
    let gflops = 2 * Double(m * n * k) / seconds / 1e9
    peak = max(peak, gflops)
    results.append(Result(name: "sgemm_\(m)x\(n)x\(k)_nt", unit: "GFLOP/s", value: gflops))
}
for i in results.indices { results[i].fraction_of_peak = results[i].value / peak }

// 2. One pre-norm transformer block, forward + backward (d 256, seq 64, batch 32).
let (batch, seq) = (32, 64)
let config = TransformerConfig(hiddenSize: 256, numHeads: 4, numKeyValueHeads: 2, intermediateSize: 704)
let block = TransformerBlock(config, rng: &rng)
let x = Tensor.randomNormal([batch, seq, config.hiddenSize], rng: &rng, requiresGrad: true)
let upstream = Tensor.randomNormal([batch, seq, config.hiddenSize], rng: &rng)
let positions = Array(0..<seq)

/// Matmul FLOPs of one forward pass; backward costs twice that.
@MainActor func blockForwardFlops() -> Double {
    let n = Double(batch * seq), d = Double(config.hiddenSize), kv = Double(config.numKeyValueHeads * config.headDim)
    let i = Double(config.intermediateSize), t = Double(seq)
    let projections = 2 * n * d * (d + 2 * kv + d)
    let mlp = 3 * 2 * n * d * i
    let attention = 2 * 2 * Double(batch) * Double(config.numHeads) * t * t * Double(config.headDim)
    return projections + mlp + attention
}

@MainActor func step() {
    block.zeroGrad()
    x.zeroGrad()
    block(x, positions: positions, mask: .causal).backward(upstream)
}
let stepSeconds = timeMedian(minSeconds: minSeconds * 2, step)
let forwardSeconds = timeMedian(minSeconds: minSeconds) { _ = withoutGrad { block(x, positions: positions, mask: .causal) } }
let blockGflops = 3 * blockForwardFlops() / stepSeconds / 1e9
results.append(Result(name: "block_fwd_bwd_d256_s64_b32", unit: "GFLOP/s", value: blockGflops,
                      fraction_of_peak: blockGflops / peak,
                      detail: String(format: "%.2f ms/step, forward (no grad) %.2f ms; %.0f tokens/s", stepSeconds * 1e3,
                                     forwardSeconds * 1e3, Double(batch * seq) / stepSeconds)))

// Report.
print(String(format: "sgemm peak this run: %.1f GFLOP/s", peak))
for r in results {
    let frac = r.fraction_of_peak.map { String(format: "%5.1f%% of peak", $0 * 100) } ?? ""
    print(String(format: "  %-32@ %9.1f %@  %@ %@", r.name as NSString, r.value, r.unit as NSString, frac as NSString,
                 (r.detail ?? "") as NSString))
}

struct Report: Codable {
    struct Machine: Codable { var cpu: String; var cores: Int; var openblas_core: String; var openblas_core_source: String; var openblas_threads: Int }
    var machine: Machine
    var date: String
    var sgemm_peak_gflops: Double
    var results: [Result]
}
let cpu = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
    .split(separator: "\n").first { $0.hasPrefix("model name") }.map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) } ?? "unknown"
let stamp = ISO8601DateFormatter().string(from: Date())
let report = Report(machine: .init(cpu: cpu, cores: ProcessInfo.processInfo.activeProcessorCount, openblas_core: BLAS.core,
                                   openblas_core_source: BLAS.coreSource, openblas_threads: BLAS.threads),
                    date: stamp, sgemm_peak_gflops: peak, results: results)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
do {
    try FileManager.default.createDirectory(at: outputDir, withIntermediateDirectories: true)
    let data = try encoder.encode(report)
    try data.write(to: outputDir.appendingPathComponent("latest.json"), options: .atomic)
    try data.write(to: outputDir.appendingPathComponent("bench-\(stamp.prefix(10)).json"), options: .atomic)
    print("wrote \(outputDir.appendingPathComponent("latest.json").path)")
} catch {
    FileHandle.standardError.write("bench: cannot write results to \(outputDir.path): \(error)\n".data(using: .utf8)!)
    exit(1)
}
