/// Stage 2's closed-loop thinking schedule (§4 of the method notes): the response to an instruction
/// is generated once and reused for `every` steps, then generated again from the current image;
/// a new instruction is answered at once. Each client (a server connection: one episode at a time)
/// has its own response, so one client never acts on a response generated from another's image.
public struct ThoughtCache: Sendable {
    public struct Thought: Sendable, Equatable {
        public let ids: [Int32]
        public let text: String
        /// Steps this response was reused for before this one (0: generated now).
        public let age: Int
    }

    public let every: Int
    private var current: [Int: (instruction: String, ids: [Int32], text: String, uses: Int)] = [:]

    public init(every: Int) {
        precondition(every >= 1, "ThoughtCache: every must be >= 1")
        self.every = every
    }

    public mutating func thought(for instruction: String, client: Int = 0,
                                 generate: () throws -> (ids: [Int32], text: String)) rethrows -> Thought {
        if let last = current[client], last.instruction == instruction, last.uses < every {
            current[client]!.uses += 1
        } else {
            let made = try generate()
            current[client] = (instruction, made.ids, made.text, 1)
        }
        let now = current[client]!
        return Thought(ids: now.ids, text: now.text, age: now.uses - 1)
    }

    /// Drops a client's response (its connection closed).
    public mutating func forget(client: Int) {
        current[client] = nil
    }

    /// Clients with a response held.
    public var clients: Int { current.count }
}
