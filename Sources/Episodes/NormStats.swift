import Checkpoint
import Foundation

/// Per-dimension statistics of one stream (actions or proprio).
public struct DimensionStats: Codable, Sendable, Equatable {
    public var mean: [Double], std: [Double], min: [Double], max: [Double], q01: [Double], q99: [Double]
}

/// The names and sizes the statistics belong to; statistics for a different schema are refused.
public struct StatsSchema: Codable, Sendable, Equatable {
    public var actionKey: String
    public var actionDim: Int
    public var proprioKeys: [String]
    public var proprioDim: Int

    enum CodingKeys: String, CodingKey {
        case actionKey = "action_key", actionDim = "action_dim", proprioKeys = "proprio_keys", proprioDim = "proprio_dim"
    }
}

/// `norm_stats.json`: statistics over a training split, the schema they describe, and a SHA-256 of
/// the values they were computed from. Normalisation maps [q01, q99] to [-1, 1] per dimension.
public struct NormStats: Codable, Sendable, Equatable {
    public var schema: StatsSchema
    public var actions: DimensionStats
    public var proprio: DimensionStats
    public var dataHash: String
    public var count: Int

    enum CodingKeys: String, CodingKey { case schema, actions, proprio, dataHash = "data_hash", count }

    /// A dimension whose q99 − q01 is below this is treated as constant: it normalises to 0 and
    /// unnormalises back to its q01 (a dimension with no spread carries no signal to learn).
    public static let constantSpread = 1e-6

    public init(dataset: EpisodeDataset) throws {
        let (actions, proprio) = try dataset.allActionsAndProprio()
        schema = dataset.statsSchema
        self.actions = Self.stats(actions, dims: dataset.actionDim)
        self.proprio = Self.stats(proprio, dims: dataset.proprioDim)
        count = actions.count / max(dataset.actionDim, 1)
        var hasher = SHA256()
        actions.withUnsafeBytes { hasher.update($0) }
        proprio.withUnsafeBytes { hasher.update($0) }
        dataHash = hasher.finalize()
    }

    /// Mean, population std, min, max and NumPy-style (linear) 1% / 99% quantiles per column.
    static func stats(_ values: [Float], dims: Int) -> DimensionStats {
        var s = DimensionStats(mean: [], std: [], min: [], max: [], q01: [], q99: [])
        let n = values.count / max(dims, 1)
        for d in 0..<dims {
            let column = (0..<n).map { Double(values[$0 * dims + d]) }.sorted()
            let mean = column.reduce(0, +) / Double(n)
            s.mean.append(mean)
            s.std.append((column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)).squareRoot())
            s.min.append(column.first!)
            s.max.append(column.last!)
            s.q01.append(quantile(column, 0.01))
            s.q99.append(quantile(column, 0.99))
        }
        return s
    }

    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = Swift.min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    /// x → 2(x − q01)/(q99 − q01) − 1, clipped to [-1, 1], in place over rows of `stats.q01.count`.
    public static func normalize(_ values: inout [Float], _ stats: DimensionStats) {
        let dims = stats.q01.count
        for i in values.indices {
            let d = i % dims, spread = stats.q99[d] - stats.q01[d]
            guard spread >= constantSpread else { values[i] = 0; continue }
            values[i] = Float(Swift.min(Swift.max(2 * (Double(values[i]) - stats.q01[d]) / spread - 1, -1), 1))
        }
    }

    /// The inverse of `normalize` (for actions a policy predicts).
    public static func unnormalize(_ values: inout [Float], _ stats: DimensionStats) {
        let dims = stats.q01.count
        for i in values.indices {
            let d = i % dims, spread = stats.q99[d] - stats.q01[d]
            values[i] = Float(spread < constantSpread ? stats.q01[d] : (Double(values[i]) + 1) / 2 * spread + stats.q01[d])
        }
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        try writeAtomically(url) { try $0.write(data) }
    }

    /// Reads statistics and checks they describe `schema`.
    public static func read(from url: URL, expecting schema: StatsSchema) throws -> NormStats {
        let stats: NormStats
        do { stats = try JSONDecoder().decode(NormStats.self, from: Data(contentsOf: url)) } catch {
            throw EpisodeError("\(url.path): not a readable norm_stats.json (\(error))")
        }
        guard stats.schema == schema else {
            throw EpisodeError("\(url.path): statistics are for \(stats.schema.actionKey)[\(stats.schema.actionDim)] + \(stats.schema.proprioKeys)[\(stats.schema.proprioDim)], this data is \(schema.actionKey)[\(schema.actionDim)] + \(schema.proprioKeys)[\(schema.proprioDim)]")
        }
        return stats
    }
}

extension EpisodeDataset {
    /// The schema statistics of this dataset must have.
    public var statsSchema: StatsSchema {
        StatsSchema(actionKey: layout.actionKey, actionDim: actionDim, proprioKeys: layout.proprioKeys, proprioDim: proprioDim)
    }
}
