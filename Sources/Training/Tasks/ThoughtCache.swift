/// Stage 2's closed-loop thinking schedule (§4 of the method notes): the response to an instruction
/// is generated once and reused for `every` steps, then generated again from the current image;
/// a new instruction is answered at once.
public struct ThoughtCache: Sendable {
    public struct Thought: Sendable, Equatable {
        public let ids: [Int32]
        public let text: String
        /// Steps this response was reused for before this one (0: generated now).
        public let age: Int
    }

    public let every: Int
    private var current: (instruction: String, ids: [Int32], text: String, uses: Int)?

    public init(every: Int) {
        precondition(every >= 1, "ThoughtCache: every must be >= 1")
        self.every = every
    }

    public mutating func thought(for instruction: String, generate: () throws -> (ids: [Int32], text: String)) rethrows -> Thought {
        if current == nil || current!.instruction != instruction || current!.uses >= every {
            let made = try generate()
            current = (instruction, made.ids, made.text, 0)
        }
        current!.uses += 1
        return Thought(ids: current!.ids, text: current!.text, age: current!.uses - 1)
    }
}
