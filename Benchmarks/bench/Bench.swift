import Autograd
import Distributed
import Episodes
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
/// The stage-1 step's batch: one process takes all of it, N data-parallel ranks 1/N each.
let stage1Batch = 32
/// The recipe's `flow.samples`: the expert's backbone runs this many times per sample.
let stage1FlowSamples = 4

// One rank of the data-parallel measurement (`bench` starts it under mpirun, see section 5).
if arguments.contains("--data-parallel-rank") {
    let job = try Job.communicator()
    let measured = stage1Step(batch: stage1Batch / job.size, communicator: job)
    if job.isRoot { print("data-parallel:", String(decoding: try JSONEncoder().encode(measured.dataParallel), as: UTF8.self)) }
    job.finalize()
    exit(0)
}

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

// 3. Where the block's step time goes: each part fwd+bwd on its own, at the block's shapes.
@MainActor func part(_ key: String, _ label: String, _ body: () -> [Tensor]) -> (key: String, label: String, seconds: Double) {
    let seconds = timeMedian(minSeconds: minSeconds / 2) {
        for y in body() { y.backward(Tensor.ones(y.shape)) }
    }
    return (key, label, seconds)
}
let hidden = Tensor.randomNormal([batch, seq, config.hiddenSize], rng: &rng, requiresGrad: true)
let wide = Tensor.randomNormal([batch, seq, config.intermediateSize], rng: &rng, requiresGrad: true)
let attn = block.selfAttn, mlp = block.mlp
let qh = Tensor.randomNormal([batch, seq, config.numHeads, config.headDim], rng: &rng, requiresGrad: true)
let kh = Tensor.randomNormal([batch, seq, config.numKeyValueHeads, config.headDim], rng: &rng, requiresGrad: true)
let parts = [
    part("linears", "7 linear layers (sgemm)") {
        [attn.qProj(hidden), attn.kProj(hidden), attn.vProj(hidden), attn.oProj(hidden), mlp.gateProj(hidden), mlp.upProj(hidden), mlp.downProj(wide)]
    },
    part("attention", "attention core (QKᵀ, mask, softmax, PV)") { [scaledDotProductAttention(query: qh, key: kh, value: kh, mask: .causal)] },
    part("rmsnorm", "2 rmsnorm") { [rmsNorm(hidden, weight: block.inputLayernorm.weight), rmsNorm(hidden, weight: block.postAttentionLayernorm.weight)] },
    part("rope", "2 rope") { [rope(qh, positions: positions), rope(kh, positions: positions)] },
    part("swiglu", "silu · up") { [silu(wide) * wide] },
    part("residual", "2 residual adds") { [hidden + hidden, hidden + hidden] },
]
// Each probe also pays for its all-ones upstream gradients; the remainder is what the parts miss.
let partsTotal = parts.map(\.seconds).reduce(0, +)
print(String(format: "block step %.2f ms, by part (each fwd+bwd alone):", stepSeconds * 1e3))
for (key, label, seconds) in parts {
    print(String(format: "  %-42@ %7.2f ms  %5.1f%%", label as NSString, seconds * 1e3, seconds / stepSeconds * 100))
    results.append(Result(name: "block_part_\(key)", unit: "ms",
                          value: seconds * 1e3, fraction_of_peak: nil, detail: String(format: "%.1f%% of the block step", seconds / stepSeconds * 100)))
}
print(String(format: "  %-42@ %7.2f ms  %5.1f%%", "rest (tape, reshapes, allocation)" as NSString,
             (stepSeconds - partsTotal) * 1e3, (stepSeconds - partsTotal) / stepSeconds * 100))

// 4. The episode loader: decoded, augmented 64² samples per second from zstd-chunked HDF5, on one
// worker thread (what training can draw), and the decode + augment rate on the calling thread alone.
@MainActor func loaderThroughput() throws -> (prefetched: Double, singleThread: Double) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("instructvla-bench-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("episodes.hdf5").path
    let (episodes, length, side) = (8, 120, 64)
    do {
        let writer = try HDF5Writer(path: path)
        var rng = RNG(seed: 3)
        for e in 0..<episodes {
            // Smooth scenes with a little noise, so compression behaves as on rendered frames.
            var frames = [UInt8](repeating: 0, count: length * side * side * 3)
            for t in 0..<length { for y in 0..<side { for x in 0..<side { for c in 0..<3 {
                let v = (x * (c + 1) + y * 2 + t * 3 + e * 17) % 256
                frames[((t * side + y) * side + x) * 3 + c] = UInt8(clamping: v + Int(rng.next() % 8))
            } } } }
            let base = "data/demo_\(e)"
            try writer.write("\(base)/obs/agentview_rgb", shape: [length, side, side, 3], bytes: frames, chunkRows: 8, zstdLevel: 3)
            try writer.write("\(base)/actions", shape: [length, 4], floats: (0..<(length * 4)).map { _ in rng.uniform() * 2 - 1 })
            try writer.write("\(base)/obs/ee_pos", shape: [length, 3], floats: (0..<(length * 3)).map { _ in rng.uniform() })
            try writer.write("\(base)/obs/gripper_state", shape: [length, 1], floats: (0..<length).map { _ in rng.uniform() })
        }
    }
    let dataset = try EpisodeDataset(files: [path], layout: .metaworld)
    let stats = try NormStats(dataset: dataset)
    var options = LoaderOptions()
    (options.batchSize, options.horizon) = (32, 8)
    let loader = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
    let perBatch = timeMedian(minSeconds: minSeconds) { _ = try! loader.next() }
    var sampler = EpisodeSampler(lengths: dataset.episodes.map(\.length), seed: 1)
    let direct = try EpisodeLoader(dataset: dataset, stats: stats, options: options)
    let perBatchDirect = timeMedian(minSeconds: minSeconds) { _ = try! direct.assemble(&sampler) }
    return (32 / perBatch, 32 / perBatchDirect)
}
do {
    let (prefetched, single) = try loaderThroughput()
    results.append(Result(name: "loader_64px_augmented", unit: "samples/s", value: prefetched, fraction_of_peak: nil,
                          detail: String(format: "consumer side, prefetch on 1 worker; decode+augment alone on one thread: %.0f samples/s", single)))
} catch {
    print("bench: loader benchmark failed: \(error)")
}

// 5. A stage-1 training step at benchmark scale (the sizes of Recipes/metaworld-mt10/vlm.yaml and
// stage1.yaml) on synthetic inputs: forward, backward, clipping and AdamW. Its rate is the matrix
// products' FLOPs per second of step time, against the peak above; the loader's rate above is
// compared with what this step consumes.
struct DataParallelStep: Codable {
    var ranks: Int, threads: Int, samplesPerSecond: Double
    /// Time in collectives over the timed steps, waiting for a slower rank included.
    var communicationShare: Double
    var gradientFloats: Int
    /// One gradient all-reduce on its own, all ranks arriving together: the transfer without the waiting.
    var allReduceSeconds: Double
}

/// `batch` samples per rank; with a communicator of N ranks, gradients are averaged across them each
/// step and the step time is timed over a fixed number of steps (every rank must take as many).
@MainActor func stage1Step(batch b: Int = stage1Batch, communicator: Communicator = SingleProcess())
    -> (samplesPerSecond: Double, gemmGflops: Double, detail: String, dataParallel: DataParallelStep) {
    var r = RNG(seed: 5)
    let vlm = VisionLanguageModel(vision: VisionConfig(imageSize: 64, patchSize: 8, hiddenSize: 96, numLayers: 3, numHeads: 4, intermediateSize: 192),
                                  language: TransformerConfig(hiddenSize: 128, numHeads: 4, numKeyValueHeads: 2, intermediateSize: 256),
                                  vocabSize: 512, numLayers: 3, imageTokenId: 2, rng: &r)
    vlm.centerImageFeatures = true
    var expert = ActionExpertConfig(
        backbone: TransformerConfig(hiddenSize: 128, numHeads: 4, numKeyValueHeads: 4, intermediateSize: 256, ropeTheta: 1000, attentionBias: false),
        numLayers: 3, vision: VisionConfig(imageSize: 64, patchSize: 8, hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128),
        latentSize: 128, numQueries: 16, proprioDim: 1, actionDim: 4, horizon: 8)
    expert.vision.stemChannels = 32
    expert.spatialReadout = true
    // stage1.yaml's data: two camera views, the gripper opening as proprio, nine auxiliary targets
    expert.cameras = 2
    expert.mergePatches = true
    expert.auxiliaryOutputs = 9
    let queries = (3..<19).map(Int32.init)
    let vla = InstructVLA(vlm: vlm, expert: expert, lora: LoRASettings(rank: 16, alpha: 32, dropout: 0), queryIds: queries, seed: 6)
    let text = 24
    // [start | 16 image tokens | instruction | 16 queries | end]: the length of an MT10 prompt.
    let sample: [Int32] = [0] + Array(repeating: 2, count: vlm.tokensPerImage) + (0..<text).map { Int32(30 + $0 % 400) } + queries + [1]
    let targets: [Int32] = Array(repeating: -100, count: 1 + vlm.tokensPerImage + text - 1) + queries + [1, -100]
    let pixels = Tensor.randomUniform([b, expert.cameras, 64, 64, 3], low: 0, high: 1, rng: &r)
    let inputs = ActionInputs(ids: Array((0..<b).map { _ in sample }.joined()), targets: Array((0..<b).map { _ in targets }.joined()),
                              length: sample.count, imageTokens: withoutGrad { vlm.imageTokens(ActionInputs.vlmView(pixels)) }, pixels: pixels,
                              proprio: Tensor.randomUniform([b, expert.proprioDim], low: -1, high: 1, rng: &r))
    let actions = Tensor.randomUniform([b, 8, 4], low: -1, high: 1, rng: &r)
    let auxiliaryTargets = Tensor.randomUniform([b, expert.auxiliaryOutputs], low: -1, high: 1, rng: &r)
    let trainable = vla.namedParameters().filter { $0.0.hasPrefix("action_model.") || $0.0.contains(".lora_") || $0.0.hasSuffix("embed_tokens.weight") }
    let optimizer = AdamW(trainable, weightDecay: 0)
    var noise = RNG(seed: 7)
    func step() {
        optimizer.zeroGrad()
        vla.loss(inputs, actions: actions, sampleRNGs: (0..<b).map { _ in noise.split() }, flowSamples: stage1FlowSamples,
                 auxiliary: (auxiliaryTargets, 1)).total.backward()
        try! communicator.averageGradients(trainable.map(\.1))  // a failed collective ends the bench
        _ = clipGradNorm(trainable.map(\.1), maxNorm: 1)
        optimizer.update(learningRate: 3e-4)
    }
    step()
    let before = BLAS.gemmFlops
    step()
    let flops = Double(BLAS.gemmFlops - before)
    let (started, communicated) = (Date(), communicator.communicationSeconds)
    let steps = quick ? 5 : 20
    for _ in 0..<steps { step() }
    let wall = Date().timeIntervalSince(started)
    let share = (communicator.communicationSeconds - communicated) / wall
    try! communicator.barrier()
    let reduceStarted = Date()
    for _ in 0..<steps { try! communicator.averageGradients(trainable.map(\.1)) }
    let parallel = DataParallelStep(ranks: communicator.size, threads: BLAS.workers, samplesPerSecond: Double(b * communicator.size * steps) / wall,
                                    communicationShare: share, gradientFloats: trainable.reduce(0) { $0 + $1.1.count },
                                    allReduceSeconds: Date().timeIntervalSince(reduceStarted) / Double(steps))
    let seconds = communicator.size > 1 ? wall / Double(steps) : timeMedian(minSeconds: minSeconds * 2, step)
    return (Double(b * communicator.size) / seconds, flops / seconds / 1e9,
            String(format: "batch %d, %.1f ms/step, %.2f GFLOP of matrix products per step", b, seconds * 1e3, flops / 1e9), parallel)
}
let stage1 = stage1Step()
results.append(Result(name: "stage1_step_mt10_scale", unit: "GFLOP/s", value: stage1.gemmGflops, fraction_of_peak: stage1.gemmGflops / peak,
                      detail: String(format: "%.0f samples/s; ", stage1.samplesPerSecond) + stage1.detail))
// 5. Data-parallel scaling: the same step as 2 MPI ranks × 1 thread (batch 16 each) against the one
// process × 2 threads above (batch 32), both timed over the same fixed number of steps.
if let parallel = dataParallelStep(ranks: 2) {
    let single = stage1.dataParallel
    results.append(Result(name: "stage1_step_1rank_x_\(single.threads)threads", unit: "samples/s", value: single.samplesPerSecond,
                          detail: "one process, batch \(stage1Batch)"))
    results.append(Result(name: "stage1_step_\(parallel.ranks)ranks_x_\(parallel.threads)thread", unit: "samples/s", value: parallel.samplesPerSecond,
                          detail: String(format: "mpirun -np %d, batch %d per rank, %.2fx the single process; %.1f%% of step time in collectives " +
                                         "(waiting for the slower rank included), of which the all-reduce of %.1fM floats alone takes %.1f ms (%.1f%%)",
                                         parallel.ranks, stage1Batch / parallel.ranks, parallel.samplesPerSecond / single.samplesPerSecond,
                                         parallel.communicationShare * 100, Double(parallel.gradientFloats) / 1e6, parallel.allReduceSeconds * 1e3,
                                         parallel.allReduceSeconds * parallel.samplesPerSecond / Double(stage1Batch) * 100)))
    results.append(Result(name: "stage1_data_parallel_communication", unit: "% of step time", value: parallel.communicationShare * 100))
}

/// This benchmark's stage-1 step as an mpirun job of `ranks` × 1 thread, or nil (with a note) without mpirun.
func dataParallelStep(ranks: Int) -> DataParallelStep? {
    let process = Process(), pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["mpirun", "-np", "\(ranks)", "--oversubscribe", "--bind-to", "none", "-x", "INSTRUCTVLA_THREADS=1",
                         CommandLine.arguments[0], "--data-parallel-rank"] + (quick ? ["--quick"] : [])
    process.environment = ProcessInfo.processInfo.environment.merging(["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]) { $1 }
    (process.standardOutput, process.standardError) = (pipe, pipe)
    do { try process.run() } catch {
        print("bench: data-parallel scaling skipped (cannot start mpirun: \(error); `make setup` installs openmpi-bin)")
        return nil
    }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0, let line = output.split(separator: "\n").first(where: { $0.hasPrefix("data-parallel: ") }),
          let measured = try? JSONDecoder().decode(DataParallelStep.self, from: Data(line.dropFirst("data-parallel: ".count).utf8)) else {
        print("bench: data-parallel scaling failed (mpirun exited \(process.terminationStatus)):\n\(output.suffix(2000))")
        return nil
    }
    return measured
}

if let loader = results.first(where: { $0.name == "loader_64px_augmented" }) {
    results.append(Result(name: "loader_over_stage1_consumption", unit: "x", value: loader.value / stage1.samplesPerSecond, fraction_of_peak: nil,
                          detail: "augmented 64² samples the loader delivers per sample a stage-1 step consumes"))
}

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
                                   openblas_core_source: BLAS.coreSource, openblas_threads: BLAS.workers),
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
