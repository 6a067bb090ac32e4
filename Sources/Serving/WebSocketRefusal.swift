import NIOCore
import NIOWebSocket

/// Answers a frame that the decoder or the aggregator refuses (over the size bound, malformed) with a
/// close frame naming why (1009 message too big, 1002 protocol error), then closes as RFC 6455 §7.1.1
/// asks: our side first, while reading and dropping whatever the client still sends, until the client
/// closes its side or `lingering` runs out.
///
/// NIO's own `WebSocketProtocolErrorHandler` closes the socket at once. With the rest of an oversized
/// message still unread, the kernel then answers with a reset, and the client may lose the close
/// frame (and its code) that was already on its way. It also sits before the aggregator, so an
/// over-long fragmented message got no close frame at all.
final class WebSocketRefusalHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let lingering: TimeAmount
    private let log: @Sendable (String) -> Void
    private var refused = false

    init(lingering: TimeAmount = .seconds(5), log: @escaping @Sendable (String) -> Void) {
        self.lingering = lingering
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // After a refusal the decoder reports each further read as `dataReceivedInErrorState`: the
        // rest of the refused message, dropped here.
        guard !refused else { return }
        guard let code = Self.closeCode(for: error) else {
            context.fireErrorCaught(error)
            return
        }
        refused = true
        log("refused a frame (\(error)): closing with \(code)")
        var reason = context.channel.allocator.buffer(capacity: 2)
        reason.write(webSocketErrorCode: code)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reason)))
            .whenComplete { _ in channel.close(mode: .output, promise: nil) }
        // The client's end of the closing handshake (its close frame, then its FIN) closes the channel
        // before this fires; a client that never answers is cut off here.
        channel.eventLoop.scheduleTask(in: lingering) { channel.close(promise: nil) }
    }

    static func closeCode(for error: Error) -> WebSocketErrorCode? {
        switch error {
        case NIOWebSocketError.invalidFrameLength: return .messageTooLarge
        case is NIOWebSocketError: return .protocolError
        case NIOWebSocketFrameAggregator.Error.accumulatedFrameSizeIsTooLarge,
             NIOWebSocketFrameAggregator.Error.tooManyFragments: return .messageTooLarge
        case is NIOWebSocketFrameAggregator.Error: return .protocolError
        default: return nil
        }
    }
}
