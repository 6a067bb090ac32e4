import Autograd
import Foundation

/// Everything besides weights and optimizer moments that a resumed run needs to continue exactly:
/// written as `trainer_state.json` in every checkpoint.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Optimizer updates completed.
    public var step: Int
    public var epoch: Int
    public var samplesSeen: Int
    /// Named generator states (data order, dropout, noise), each as four hex words.
    public var rngStates: [String: [String]]
    /// The data loader's position (epoch, cursor and the like), as the loader defines it.
    public var dataLoader: [String: Int]
    public var learningRate: Double
    /// The last logged metrics, for the record.
    public var metrics: [String: Double]
    /// Processes of the data-parallel job that wrote this state (absent: one).
    public var worldSize: Int?

    public init(step: Int = 0, epoch: Int = 0, samplesSeen: Int = 0, rngStates: [String: [String]] = [:],
                dataLoader: [String: Int] = [:], learningRate: Double = 0, metrics: [String: Double] = [:], worldSize: Int? = nil) {
        (self.step, self.epoch, self.samplesSeen, self.rngStates) = (step, epoch, samplesSeen, rngStates)
        (self.dataLoader, self.learningRate, self.metrics, self.worldSize) = (dataLoader, learningRate, metrics, worldSize)
    }

    enum CodingKeys: String, CodingKey {
        case step, epoch, metrics
        case samplesSeen = "samples_seen", rngStates = "rng_states", dataLoader = "data_loader", learningRate = "learning_rate", worldSize = "world_size"
    }

    public mutating func setRNG(_ name: String, _ rng: RNG) {
        rngStates[name] = rng.stateWords.map { String($0, radix: 16) }
    }

    /// The saved generator `name`, or an error naming what is wrong with it.
    public func rng(_ name: String) throws -> RNG {
        guard let words = rngStates[name] else { throw StateDictError(message: "trainer state has no RNG '\(name)'") }
        let values = words.compactMap { UInt64($0, radix: 16) }
        guard values.count == 4, values.contains(where: { $0 != 0 }) else {
            throw StateDictError(message: "trainer state RNG '\(name)' is not four non-zero hex words: \(words)")
        }
        return RNG(stateWords: values)
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        try writeAtomically(url) { try $0.write(data) }
    }

    public static func read(from url: URL) throws -> TrainerState {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw FileSystemError(path: url.path, message: "cannot read trainer state")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw StateDictError(message: "\(url.path): not a valid trainer state (\(error))")
        }
    }
}
