/// "Language motion" (the paper's move primitives, §2.1 of the method notes): the end effector's
/// change over the next steps in words, e.g. "move forward left, move up, close gripper", or "stop".
/// Each axis is ternarised with a threshold; Meta-World's axes are x = right, y = forward (away from
/// the robot base), z = up, and its gripper state is the opening (a decrease is a closing gripper).
public struct LanguageMotion: Sendable, Equatable {
    /// Steps ahead the change is measured over.
    public var window: Int
    /// Metres of end-effector travel below which an axis counts as still.
    public var positionThreshold: Float
    /// Change of gripper opening below which the gripper counts as still.
    public var gripperThreshold: Float

    public init(window: Int = 4, positionThreshold: Float = 0.01, gripperThreshold: Float = 0.05) {
        (self.window, self.positionThreshold, self.gripperThreshold) = (window, positionThreshold, gripperThreshold)
    }

    /// The phrase for proprio rows `now` and `later` laid out as (x, y, z, gripper opening).
    public func phrase(from now: ArraySlice<Float>, to later: ArraySlice<Float>) -> String {
        let d = zip(later, now).map { $0 - $1 }
        func sign(_ v: Float, _ threshold: Float) -> Int { v > threshold ? 1 : v < -threshold ? -1 : 0 }
        let (x, y, z) = (sign(d[0], positionThreshold), sign(d[1], positionThreshold), sign(d[2], positionThreshold))
        var parts: [String] = []
        let planar = [[-1: "backward", 1: "forward"][y], [-1: "left", 1: "right"][x]].compactMap { $0 }
        if !planar.isEmpty { parts.append("move " + planar.joined(separator: " ")) }
        if z != 0 { parts.append(z > 0 ? "move up" : "move down") }
        if d.count > 3, sign(d[3], gripperThreshold) != 0 { parts.append(d[3] < 0 ? "close gripper" : "open gripper") }
        return parts.isEmpty ? "stop" : parts.joined(separator: ", ")
    }
}
