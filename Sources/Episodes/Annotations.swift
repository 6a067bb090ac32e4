import Foundation

/// One VLA-IT annotation of an episode (InstructVLA §3; written by Datasets/metaworld/annotate.py as
/// the JSON attr `annotations` of `data/demo_<i>`): a caption or QA turn (`question` → `response`),
/// or a command rewriting / context creation (`instruction` whose `response` names the action).
public struct Annotation: Codable, Sendable, Equatable {
    public enum Category: String, Codable, Sendable, CaseIterable {
        case caption, qa
        case commandRewriting = "command_rewriting"
        case contextCreation = "context_creation"
    }
    public var category: Category
    public var question: String?
    public var instruction: String?
    public var response: String
    /// QA type (count_objects, colour, …), for QA only.
    public var type: String?

    public init(category: Category, question: String? = nil, instruction: String? = nil, response: String, type: String? = nil) {
        (self.category, self.question, self.instruction, self.response, self.type) = (category, question, instruction, response, type)
    }

    /// What the user says: the question of a caption/QA turn, the instruction of a command.
    public var prompt: String { question ?? instruction ?? "" }
}

extension EpisodeDataset {
    /// The annotations of episode `e` ([] when it has none); a malformed attr is an error naming the
    /// file, the episode and what is wrong.
    public func annotations(episode e: Int) throws -> [Annotation] {
        let info = episodes[e]
        guard layout.kind == .robomimic, let file = fileHandle(info.file) else { return [] }
        guard let text = try file.stringAttribute("annotations", of: "data/\(info.name)") else { return [] }
        do {
            let entries = try JSONDecoder().decode([Annotation].self, from: Data(text.utf8))
            for (i, a) in entries.enumerated() where a.prompt.isEmpty || a.response.isEmpty {
                throw EpisodeError("entry \(i) (\(a.category.rawValue)) needs a non-empty " +
                                   "\(a.category == .caption || a.category == .qa ? "question" : "instruction") and response")
            }
            return entries
        } catch let error as EpisodeError {
            throw EpisodeError("\(info.file): data/\(info.name) attr 'annotations': \(error.message)")
        } catch {
            throw EpisodeError("\(info.file): data/\(info.name) attr 'annotations' is not a JSON list of " +
                               "{category, question|instruction, response}: \(error)")
        }
    }
}
