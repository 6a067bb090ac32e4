import Episodes
import Models

/// The language-motion phrase of any frame of a dataset: the end effector's change over the next
/// `window` steps, from the episodes' raw proprio rows (read once).
struct MotionPhrases {
    let motion: LanguageMotion
    let proprioDim: Int
    let rows: [[Float]]

    init(_ motion: LanguageMotion, dataset: EpisodeDataset) throws {
        self.motion = motion
        proprioDim = dataset.proprioDim
        rows = try dataset.episodes.indices.map { try dataset.proprio(episode: $0) }
    }

    func phrase(episode: Int, step: Int) -> String {
        let (d, r) = (proprioDim, rows[episode])
        let later = min(step + motion.window, r.count / d - 1)
        return motion.phrase(from: r[(step * d)..<((step + 1) * d)], to: r[(later * d)..<((later + 1) * d)])
    }

    /// The distinct phrases of an episode's frames.
    func phrases(episode: Int) -> Set<String> {
        Set((0..<(rows[episode].count / proprioDim)).map { phrase(episode: episode, step: $0) })
    }
}
