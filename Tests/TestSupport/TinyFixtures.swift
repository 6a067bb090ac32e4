import Foundation

/// The smallest real data and recipes the stage tests train on: Meta-World demonstrations and
/// shapes VQA at 16 px, a one-layer stage-0 VLM, a one-layer stage-1 action expert.
public enum TinyFixtures {
    /// Scripted-expert demonstrations of `tasks` (comma-separated) into `folder` (one HDF5 per task).
    public static func demonstrations(_ tasks: String, perTask: Int, into folder: URL, extraCameras: [String] = []) throws {
        try PythonReference.runScript("Datasets/metaworld/generate.py", arguments: ["--tasks", tasks, "--demos-per-task", "\(perTask)",
                                                                                   "--image-size", "16", "--workers", "1", "--out", folder.path]
                                                                                  + (extraCameras.isEmpty ? [] : ["--extra-cameras", extraCameras.joined(separator: ",")]))
    }

    public static func shapes(into file: URL, train: Int = 64, test: Int = 20) throws {
        try PythonReference.runScript("Datasets/vqa/generate_shapes.py", arguments: ["--out", file.path, "--train", "\(train)", "--test", "\(test)",
                                                                                    "--image-size", "16"])
    }

    /// A 4-step stage-0 recipe over a shapes file.
    public static func vlmRecipe(shapes: URL) -> String {
        """
        task: vlm
        model: {image_size: 16, patch_size: 4, vision_hidden_size: 16, vision_layers: 1, vision_heads: 2,
                vision_intermediate_size: 32, hidden_size: 32, num_layers: 1, num_heads: 4, num_key_value_heads: 2,
                intermediate_size: 64}
        tokenizer: {vocab_size: 300, action_queries: 4}
        data: {files: ['\(shapes.path)'], max_length: 56, eval_examples: 0}
        train: {steps: 4, batch_size: 8, save_every: 4, log_every: 4}
        """
    }

    /// A 6-step stage-1 recipe over a stage-0 run folder and the demonstrations in `demos`.
    public static func stage1Recipe(vlm: URL, demos: URL, motionFraction: Double = 0.2) -> String {
        """
        task: pretrain-action
        model: {vlm: '\(vlm.path)', action_queries: 4, hidden_size: 16, num_layers: 1, num_heads: 2, intermediate_size: 32,
                vision_patch_size: 8, vision_hidden_size: 8, vision_layers: 1, vision_heads: 2, vision_intermediate_size: 16}
        lora: {rank: 2}
        motion: {fraction: \(motionFraction)}
        data: {files: ['\(demos.path)/*-v3.hdf5'], horizon: 4}
        train: {steps: 6, batch_size: 4, learning_rate: 1.0e-2, save_every: 3, log_every: 1}
        """
    }
}
