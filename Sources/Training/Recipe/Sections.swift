import Models

/// `train:` — the optimisation and bookkeeping every stage shares.
public struct TrainSection: Codable, Sendable, Equatable {
    /// Optimizer updates in the whole run.
    public var steps = 1000
    /// Samples per micro-batch.
    public var batchSize = 32
    /// Micro-batches per update: the effective batch is batch_size × gradient_accumulation.
    public var gradientAccumulation = 1
    public var learningRate = 1e-3
    /// "warmup_cosine" or "constant".
    public var schedule = "warmup_cosine"
    public var warmupSteps = 0
    public var minLrRatio = 0.1
    public var weightDecay = 0.01
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var eps = 1e-8
    /// Global gradient-norm clip; 0 turns clipping off.
    public var clipNorm = 1.0
    /// Keep an exponential moving average of the trainable weights with this decay (each checkpoint's
    /// ema.safetensors; serving and export act with it); 0 keeps none.
    public var emaDecay = 0.0
    public var seed = 0
    /// Glob patterns (`*` any text) of parameter names that train; `frozen` wins over `trainable`.
    public var trainable = ["*"]
    public var frozen: [String] = []
    public var logEvery = 10
    /// Validation loss every N updates (0: never).
    public var evalEvery = 0
    public var evalBatches = 4
    public var saveEvery = 100
    public var keepLast = 2
    /// Also keep every checkpoint whose step is a multiple of this (0: none).
    public var keepEvery = 0

    public init() {}

    func validate() throws {
        func require(_ ok: Bool, _ message: String) throws { if !ok { throw RecipeError(message) } }
        try require(steps > 0, "train.steps: must be positive, got \(steps)")
        try require(batchSize > 0, "train.batch_size: must be positive, got \(batchSize)")
        try require(gradientAccumulation > 0, "train.gradient_accumulation: must be positive, got \(gradientAccumulation)")
        try require(learningRate > 0, "train.learning_rate: must be positive, got \(learningRate)")
        try require(["warmup_cosine", "constant"].contains(schedule),
                    "train.schedule: expected one of warmup_cosine, constant; got '\(schedule)'")
        try require(warmupSteps >= 0 && warmupSteps <= steps, "train.warmup_steps: must be within 0...train.steps (\(steps)), got \(warmupSteps)")
        try require(minLrRatio >= 0 && minLrRatio <= 1, "train.min_lr_ratio: must be within 0...1, got \(minLrRatio)")
        try require(clipNorm >= 0, "train.clip_norm: must be >= 0, got \(clipNorm)")
        try require(emaDecay == 0 || (emaDecay > 0 && emaDecay < 1), "train.ema_decay: must be 0 (off) or within (0, 1), got \(emaDecay)")
        try require(logEvery > 0, "train.log_every: must be positive, got \(logEvery)")
        try require(saveEvery > 0, "train.save_every: must be positive, got \(saveEvery)")
        try require(keepLast >= 1, "train.keep_last: must be at least 1, got \(keepLast)")
        try require(evalEvery >= 0 && keepEvery >= 0, "train.eval_every and train.keep_every: must be >= 0")
        try require(evalBatches >= 1, "train.eval_batches: must be at least 1, got \(evalBatches)")
        try require(seed >= 0, "train.seed: must be >= 0, got \(seed)")
    }

    /// Keys that may change when a run resumes (longer training, different bookkeeping).
    static let resumableChanges: Set<String> = ["train.steps", "train.log_every", "train.eval_every", "train.eval_batches",
                                               "train.save_every", "train.keep_last", "train.keep_every"]
}

/// A LoRA adapter (`lora:`): rank, alpha (0 means 2 × rank, as the paper) and dropout.
public struct LoRASection: Codable, Sendable, Equatable {
    public var rank = 8
    public var alpha = 0.0
    public var dropout = 0.05

    public init() {}

    public func validate() throws {
        guard rank >= 1, alpha >= 0, (0..<1).contains(dropout) else { throw RecipeError("lora: rank >= 1, alpha >= 0 (0: 2 × rank), dropout in [0, 1)") }
    }

    public var settings: LoRASettings { LoRASettings(rank: rank, alpha: Float(alpha > 0 ? alpha : 2 * Double(rank)), dropout: Float(dropout)) }
}

/// Flow matching (`flow:`): (time, noise) draws fitted per sample. The sample's LM pass, the
/// expert's vision and its cached context run once; only the H action tokens run per draw.
public struct FlowSection: Codable, Sendable, Equatable {
    public var samples = 1

    public init() {}

    public func validate() throws {
        guard samples >= 1 else { throw RecipeError("flow.samples: at least 1 (time, noise) draw per sample, got \(samples)") }
    }
}
