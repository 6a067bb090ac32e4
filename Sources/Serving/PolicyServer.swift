import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Serves a `Policy` over openpi's websocket protocol, so that `openpi_client.WebsocketClientPolicy`
/// (PyPI `openpi-client`) drives it unchanged:
/// - on connect the server sends its metadata (a msgpack map);
/// - each binary message is a msgpack observation, answered by a msgpack map holding `actions`
///   (float32 [H, A]), `server_timing` {infer_ms, prev_total_ms} and, for reasoning policies, `text`;
/// - a bad observation or a failed inference is answered by a text message (openpi's error form) and
///   the connection stays open for the next request.
/// `GET /healthz` answers "OK" over plain HTTP.
public final class PolicyServer: Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port = 8000
        /// Bound on one incoming message (after reassembling fragments); a larger one closes the connection
        /// with code 1009 (message too big).
        public var maxMessageBytes = 16 << 20
        public init() {}
    }

    let configuration: Configuration
    let runner: InferenceRunner
    let metadata: [UInt8]
    let stats = RequestStats()

    public init(policy: Policy, configuration: Configuration) {
        self.configuration = configuration
        self.runner = InferenceRunner(policy)
        self.metadata = MsgPack.encode(Self.metadata(policy, maxMessageBytes: configuration.maxMessageBytes))
    }

    static func metadata(_ policy: Policy, maxMessageBytes: Int) -> MsgPackValue {
        let schema = policy.schema
        var fields: [(String, MsgPackValue)] = [
            ("policy", .string(policy.name)),
            ("server", .string("instructvla-swift vla serve")),
            ("image_size", .int(Int64(schema.imageHeight))),
            ("image_shape", .array([schema.imageHeight, schema.imageWidth, 3].map { .int(Int64($0)) })),
            ("state_dim", .int(Int64(schema.stateDim))),
            ("action_horizon", .int(Int64(policy.actionHorizon))),
            ("action_dim", .int(Int64(policy.actionDim))),
            ("observation_keys", .array(schema.fields.map { .string($0) })),
            ("max_message_bytes", .int(Int64(maxMessageBytes))),
        ]
        fields += policy.extraMetadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return .map(fields.map { MsgPackEntry(.string($0.0), $0.1) })
    }

    enum Connection {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case http(NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>)
    }

    /// Binds, reports the bound port (useful with port 0), then serves until the process ends.
    public func run(onListening: @Sendable (Int) -> Void) async throws {
        let limit = configuration.maxMessageBytes
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketServerUpgrader<Connection>(
                        maxFrameSize: limit,
                        enableAutomaticErrorHandling: false,  // WebSocketRefusalHandler closes instead
                        shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(NIOWebSocketFrameAggregator(
                                    minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16, maxAccumulatedFrameSize: limit))
                                try channel.pipeline.syncOperations.addHandler(WebSocketRefusalHandler { self.log($0) })
                                return .websocket(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    let upgrade = NIOTypedHTTPServerUpgradeConfiguration(
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                return .http(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
                            }
                        })
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                        configuration: .init(upgradeConfiguration: upgrade))
                }
            }
        onListening(server.channel.localAddress?.port ?? configuration.port)
        // A discarding group: finished connections are not retained, so memory stays flat.
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await self.handle(connection) }
                }
            }
        }
    }

    /// One connection; its errors (a client vanishing mid-request included) end only that connection.
    func handle(_ connection: EventLoopFuture<Connection>) async {
        do {
            switch try await connection.get() {
            case .websocket(let channel): try await serveWebsocket(channel)
            case .http(let channel): try await serveHTTP(channel)
            }
        } catch {
            log("connection ended: \(error)")
        }
    }

    func serveWebsocket(_ channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) async throws {
        let peer = channel.channel.remoteAddress.map { "\($0)" } ?? "?"
        let client = runner.connected()
        log("client \(client) connected: \(peer)")
        defer {
            runner.disconnected(client)
            log("client \(client) disconnected: \(peer) (\(stats.summary()))")
        }
        try await channel.executeThenClose { inbound, outbound in
            func send(_ opcode: WebSocketOpcode, _ bytes: [UInt8]) async throws {
                try await outbound.write(WebSocketFrame(fin: true, opcode: opcode, data: ByteBuffer(bytes: bytes)))
            }
            try await send(.binary, metadata)
            var previousTotalMs: Double?
            for try await frame in inbound {
                switch frame.opcode {
                case .binary:
                    let start = ContinuousClock.now
                    let reply = await respond(to: Array(frame.unmaskedData.readableBytesView), client: client,
                                              previousTotalMs: previousTotalMs)
                    switch reply {
                    case .success(let bytes): try await send(.binary, bytes)
                    case .failure(let error):
                        log("request refused: \(error)")
                        try await send(.text, Array("error: \(error)".utf8))
                    }
                    previousTotalMs = start.duration(to: .now).milliseconds
                case .text:
                    try await send(.text, Array("error: send observations as binary msgpack messages (openpi protocol), not text".utf8))
                case .ping:
                    try await send(.pong, Array(frame.unmaskedData.readableBytesView))
                case .connectionClose:
                    var data = frame.unmaskedData
                    try await send(.connectionClose, Array((data.readSlice(length: 2) ?? ByteBuffer()).readableBytesView))
                    return
                default:
                    break
                }
            }
        }
    }

    /// Decodes, validates and runs one request; any failure becomes the error text sent back.
    func respond(to bytes: [UInt8], client: Int, previousTotalMs: Double?) async -> Result<[UInt8], Error> {
        do {
            var observation = try runner.schema.validate(try MsgPack.decode(bytes))
            observation.client = client
            let (output, inferMs) = try await runner.infer(observation)
            stats.record(inferMs)
            let policy = runner.shape
            guard output.actions.count == policy.horizon * policy.actionDim else {
                throw ObservationError("policy returned \(output.actions.count) action values, expected \(policy.horizon)×\(policy.actionDim)")
            }
            var timing = [MsgPackEntry(.string("infer_ms"), .float(inferMs))]
            if let previousTotalMs { timing.append(MsgPackEntry(.string("prev_total_ms"), .float(previousTotalMs))) }
            var entries = [
                MsgPackEntry(.string("actions"), NumpyArray(floats: output.actions, shape: [policy.horizon, policy.actionDim]).msgpack),
                MsgPackEntry(.string("server_timing"), .map(timing)),
            ]
            if let text = output.text { entries.append(MsgPackEntry(.string("text"), .string(text))) }
            entries += output.extra.sorted { $0.key < $1.key }.map { MsgPackEntry(.string($0.key), $0.value) }
            return .success(MsgPack.encode(.map(entries)))
        } catch {
            return .failure(error)
        }
    }

    func serveHTTP(_ channel: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await channel.executeThenClose { inbound, outbound in
            for try await part in inbound {
                guard case .head(let head) = part else { continue }
                let healthy = head.method == .GET && head.uri == "/healthz"
                let body = ByteBuffer(string: healthy ? "OK\n" : "this is an openpi policy server: connect with a websocket client (openpi_client.WebsocketClientPolicy)\n")
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/plain")
                headers.add(name: "Content-Length", value: String(body.readableBytes))
                headers.add(name: "Connection", value: "close")
                try await outbound.write(contentsOf: [
                    .head(HTTPResponseHead(version: .http1_1, status: healthy ? .ok : .upgradeRequired, headers: headers)),
                    .body(.byteBuffer(body)), .end(nil),
                ])
                return
            }
        }
    }

    func log(_ message: String) {
        print("[serve] \(message)")
        fflush(nil)
    }
}

/// Runs inference on one serial queue: the policy sees one call at a time whatever the number of
/// connections, and the event loops stay free for I/O while a call computes.
final class InferenceRunner: @unchecked Sendable {
    private let policy: Policy  // only touched on `queue`, or immutable after init
    private let queue = DispatchQueue(label: "instructvla.serve.inference")
    private let clients = NSLock()
    private var lastClient = 0
    let schema: ObservationSchema
    let shape: (horizon: Int, actionDim: Int)

    init(_ policy: Policy) {
        self.policy = policy
        self.schema = policy.schema
        self.shape = (policy.actionHorizon, policy.actionDim)
    }

    /// A new connection's client number (1, 2, …).
    func connected() -> Int {
        clients.withLock {
            lastClient += 1
            return lastClient
        }
    }

    func disconnected(_ client: Int) {
        queue.async { self.policy.disconnected(client: client) }
    }

    func infer(_ observation: Observation) async throws -> (PolicyOutput, Double) {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                let start = ContinuousClock.now
                continuation.resume(with: Result { (try self.policy.infer(observation), start.duration(to: .now).milliseconds) })
            }
        }
    }
}

/// Request count and inference-time percentiles over the last 1,000 requests, for the log.
final class RequestStats: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var recent: [Double] = []

    func record(_ ms: Double) {
        lock.withLock {
            count += 1
            if recent.count == 1000 { recent.removeFirst() }
            recent.append(ms)
        }
    }

    func summary() -> String {
        lock.withLock {
            let sorted = recent.sorted()
            func p(_ q: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))] }
            return String(format: "%d requests served; infer p50 %.1f ms, p95 %.1f ms", count, p(0.5), p(0.95))
        }
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
