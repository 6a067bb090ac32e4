/// Where a file format keeps each part of an episode. Set from the recipe's `data.layout`.
///
/// - robomimic / LIBERO: `data/demo_i/actions`, `data/demo_i/obs/<key>`, instruction in the `data`
///   group's `language_instruction` (or `problem_info`) attribute; splits in `mask/train`, `mask/valid`.
/// - ALOHA: one episode per file: `/action`, `/observations/qpos`, `/observations/images/<camera>`.
public struct EpisodeLayout: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case robomimic, aloha }
    public var kind: Kind
    /// Image keys: robomimic `obs` keys (e.g. "agentview_rgb"), or ALOHA camera names (e.g. "top").
    public var imageKeys: [String]
    /// Proprioception keys, concatenated in order: robomimic `obs` keys, or ALOHA "qpos"/"qvel".
    public var proprioKeys: [String]
    /// "actions" (robomimic) or "action" (ALOHA).
    public var actionKey: String
    /// A (T, D) key read like proprio but only as a training target (e.g. the simulator's object and
    /// goal positions for an auxiliary loss), never as a model input; nil for none.
    public var auxiliaryKey: String?

    public init(kind: Kind, imageKeys: [String], proprioKeys: [String], actionKey: String, auxiliaryKey: String? = nil) {
        (self.kind, self.imageKeys, self.proprioKeys, self.actionKey, self.auxiliaryKey) = (kind, imageKeys, proprioKeys, actionKey, auxiliaryKey)
    }

    /// The Meta-World files written by Datasets/metaworld/generate.py.
    public static let metaworld = EpisodeLayout(kind: .robomimic, imageKeys: ["agentview_rgb"],
                                                proprioKeys: ["ee_pos", "gripper_state"], actionKey: "actions")
    public static let aloha = EpisodeLayout(kind: .aloha, imageKeys: ["top"], proprioKeys: ["qpos"], actionKey: "action")

    func actionPath(_ episode: String) -> String {
        kind == .robomimic ? "data/\(episode)/\(actionKey)" : "/\(actionKey)"
    }
    func imagePath(_ episode: String, _ key: String) -> String {
        kind == .robomimic ? "data/\(episode)/obs/\(key)" : "/observations/images/\(key)"
    }
    func proprioPath(_ episode: String, _ key: String) -> String {
        kind == .robomimic ? "data/\(episode)/obs/\(key)" : "/observations/\(key)"
    }
}
