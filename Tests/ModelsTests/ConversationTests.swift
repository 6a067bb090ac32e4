import Autograd
import Models
import XCTest

/// The stage-2 conversation layout: roles, supervision, and agreement with stage 1's single turn.
final class ConversationTests: XCTestCase {
    static let corpus = ["What action should the robot take to close the drawer?", "move left, move down, close gripper",
                         "Put the red apple on the green plate.", "How many objects are on the table?", "three", "user\n", "assistant\n",
                         "I want a healthy snack. First answer my question."]
    let tokenizer = try! BPETokenizer.train(corpus: ConversationTests.corpus, vocabularySize: 320,
                                            specialTokens: ChatTemplate.specialTokens(actionQueries: 3))
    var prompt: ActionPrompt { try! ActionPrompt(template: ChatTemplate(imageTokens: 4), tokenizer: tokenizer, numQueries: 3) }

    /// A plain command tokenised piece by piece gives exactly the ids and targets of the whole-string
    /// template that stage-1 checkpoints were trained with.
    func testSingleTurnMatchesTheTemplatesTrainingExample() {
        for motion in [nil, "move left, move down, close gripper"] {
            let made = prompt.example(instruction: "close the drawer", motion: motion)
            let question = prompt.question("close the drawer", motion == nil ? .none : .motion)
            let answer = (motion.map { $0 + " " } ?? "") + (0..<3).map(ChatTemplate.actionQuery).joined()
            let whole = prompt.template.trainingExample(question: question, answer: answer, withImage: true, tokenizer: tokenizer, length: nil)
            XCTAssertEqual(made.ids, whole.ids)
            XCTAssertEqual(made.targets, whole.targets)
        }
    }

    /// A VQA question as an open prompt is token for token the stage-0 prompt, so a stage-2 model's
    /// VQA answers are scored on exactly the input the stage-0 VLM was scored on.
    func testOpenQuestionMatchesTheStage0Prompt() {
        for question in ["How many objects are on the table?", "Is the drawer open at the start?"] {
            let open = prompt.tokenized(Conversation([Conversation.Turn(user: question, answer: "", queries: false)]), open: true)
            XCTAssertEqual(open.ids, tokenizer.encode(prompt.template.prompt(question: question, withImage: true)))
        }
    }

    /// Two turns: both assistant turns are supervised (text, queries, end of turn), the user's are
    /// not; every token has the role of the piece it came from.
    func testDialogueRolesAndSupervision() {
        let conversation = Conversation([Conversation.Turn(user: "How many objects are on the table?", answer: "three", queries: false),
                                         prompt.actionTurn("close the drawer")])
        let (ids, targets, roles) = prompt.tokenized(conversation)
        XCTAssertEqual(ids.count, targets.count)
        XCTAssertEqual(ids.count, roles.count)
        XCTAssertEqual(roles.filter { $0 == .image }.count, 4, "the image goes in the first turn only")
        XCTAssertEqual(roles.filter { $0 == .query }.count, 3)
        XCTAssertEqual(tokenizer.decode(zip(ids, roles).filter { $0.1 == .response }.map(\.0)), "three")
        XCTAssertEqual(tokenizer.decode(zip(ids, roles).filter { $0.1 == .instruction }.map(\.0)),
                       "How many objects are on the table?What action should the robot take to close the drawer?")
        // Supervised next tokens: "three", <|im_end|>, the three queries, <|im_end|>.
        let supervised = targets.filter { $0 != -100 }
        let imEnd = tokenizer.id(of: ChatTemplate.imEnd)!
        XCTAssertEqual(supervised, tokenizer.encode("three") + [imEnd] + prompt.queryIds + [imEnd])
        // A target is always the next id.
        for i in targets.indices where targets[i] != -100 { XCTAssertEqual(targets[i], ids[i + 1]) }
    }

    /// The thinking prompt: the response and the queries are the answer; `open` stops at the
    /// assistant header, which is exactly the prefix the model continues at inference.
    func testThinkingTurnAndItsOpenPrompt() {
        let turn = prompt.actionTurn("I want a healthy snack.", .think, answer: "Put the red apple on the green plate.")
        XCTAssertEqual(turn.user, "What action should the robot take to I want a healthy snack? First answer my question.")
        let full = prompt.tokenized(Conversation([turn]))
        let open = prompt.tokenized(Conversation([turn]), open: true)
        XCTAssertEqual(Array(full.ids.prefix(open.ids.count)), open.ids)
        XCTAssertTrue(open.targets.allSatisfy { $0 == -100 })
        let rest = Array(full.ids.dropFirst(open.ids.count))
        XCTAssertEqual(rest, tokenizer.encode("Put the red apple on the green plate. ") + prompt.queryIds + [tokenizer.id(of: ChatTemplate.imEnd)!])
    }
}
