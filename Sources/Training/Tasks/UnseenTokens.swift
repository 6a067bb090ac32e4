import Episodes
import Models

/// Tokens of a stage's text that the stage-0 VLM never read. `pretrain-vlm` reads its training split
/// alone, so a token outside it (a capital letter where that text is all lower case, a piece of a
/// word it never saw) keeps the random row it started with, only ever pushed down as a wrong
/// answer. With that row frozen (and tied to the LM head), the LoRAs hardly learn to say it: the MT10
/// Generalist gave "C" of "Close the drawer." 0.5% after 3000 updates and answered every MT10 command
/// with the instruct scene's "Put …". Training those rows, as the query rows train, changes nothing
/// the VLM learned.
enum UnseenTokens {
    /// Every token id of the VLM's training examples, encoded as `pretrain-vlm` encodes them;
    /// `source` names the recipe in errors.
    static func corpus(of recipe: VLMRecipe, source: String, tokenizer: BPETokenizer, template: ChatTemplate) throws -> Set<Int32> {
        let examples: [VQAExample]
        do {
            let files = try EpisodeDataSection.expand(recipe.data.files, key: "\(source) data.files")
            examples = try VQADataset(files: files, split: recipe.data.trainSplit).examples
        } catch {
            throw RecipeError("\(error) (the VLM's training text tells which vocabulary rows it never read; " +
                              "model.train_unseen_tokens: false trains the query rows alone)")
        }
        var ids = Set<Int32>()
        for e in Set(examples) {
            ids.formUnion(template.trainingExample(question: e.question, answer: e.answer, withImage: true, tokenizer: tokenizer, length: nil).ids)
        }
        return ids
    }

    /// The ids of `texts` outside `corpus`, ascending.
    static func ids<S: Sequence<[Int32]>>(of texts: S, outside corpus: Set<Int32>) -> [Int32] {
        var found = Set<Int32>()
        for text in texts { found.formUnion(text.filter { !corpus.contains($0) }) }
        return found.sorted()
    }
}
