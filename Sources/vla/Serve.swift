import ArgumentParser
import Autograd
import Foundation
import Serving
import Training

extension VLA {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve a policy over the openpi websocket protocol (msgpack + numpy; openpi_client.WebsocketClientPolicy drives it).",
            discussion: """
                Observations: {"observation/image": uint8 [H, W, 3], "observation/state": float [D], "prompt": str}.
                Replies: {"actions": float32 [horizon, A], "server_timing": {"infer_ms", "prev_total_ms"}}, and "text" (the
                response) from a stage-2 model that thinks first.
                A bad observation gets a text reply naming the key and the expected shape; the connection stays open.
                """)

        @Argument(help: "A stage-1 or stage-2 run folder (newest checkpoint) or an export bundle.")
        var model: String?

        @OptionGroup var thinking: ThinkOption

        @Option(help: "Stage 2, thinking: regenerate the response every N requests of a connection (default: the recipe's inference.think_every).")
        var thinkEvery: Int?

        @OptionGroup var weights: WeightsOption

        @Option(help: "Replay recorded episodes (HDF5 files or globs) instead of a model: tests the evaluation plumbing.")
        var replay: [String] = []

        @Option(help: "Seed of the flow-matching noise; with it each request's noise follows from its observation, so the same observation gets the same actions.")
        var seed: UInt64 = 0

        @Option(help: "Scale of that noise: 1 samples the trained distribution; 0 starts every chunk from the noise's mean (deterministic).")
        var noiseScale: Float = 1

        @Option(help: "Action chunk length returned by --replay.")
        var horizon = 8

        @Option(help: "Address to bind; 127.0.0.1 keeps the server local, 0.0.0.0 exposes it.")
        var host = "127.0.0.1"

        @Option(help: "Port (0 picks a free one; the bound port is printed).")
        var port = 8000

        @Option(help: "Largest accepted message in MiB.")
        var maxMessageMib = 16

        func run() async throws {
            print(BLAS.summary)
            guard (model == nil) != replay.isEmpty else {
                throw ValidationError("say what to serve: a run folder or export bundle, or --replay FILES (not both)")
            }
            guard noiseScale >= 0 && noiseScale.isFinite else { throw ValidationError("--noise-scale must be a finite number of at least 0, got \(noiseScale)") }
            guard (1...4096).contains(maxMessageMib) else { throw ValidationError("--max-message-mib must be in 1...4096") }
            if let thinkEvery, thinkEvery < 1 { throw ValidationError("--think-every must be at least 1, got \(thinkEvery)") }
            let policy: Policy
            do {
                if let model {
                    policy = try ModelPolicy(contentsOf: URL(fileURLWithPath: model), seed: seed, noiseScale: noiseScale, think: thinking.think,
                                         thinkEvery: thinkEvery, averaged: weights.averaged)
                } else {
                    policy = try ReplayPolicy(files: try EpisodeDataSection.expand(replay, key: "--replay"), horizon: horizon)
                }
            } catch {
                fail(error)
            }
            var configuration = PolicyServer.Configuration()
            configuration.host = host
            configuration.port = port
            configuration.maxMessageBytes = maxMessageMib << 20
            let server = PolicyServer(policy: policy, configuration: configuration)
            let (name, host) = (policy.name, host)
            let contract = "takes \(policy.schema.fields.joined(separator: ", ")); returns actions [\(policy.actionHorizon), \(policy.actionDim)]"
            do {
                try await server.run { port in
                    print("[serve] \(name) policy on ws://\(host):\(port) (\(contract))")
                    fflush(nil)
                }
            } catch {
                fail(error)
            }
        }
    }
}
