import ArgumentParser

/// Which weights of a run folder act: their moving average where the checkpoint has one
/// (`train.ema_decay`), or the trained weights' last values.
struct WeightsOption: ParsableArguments {
    @Flag(help: "Use the trained weights' last values even where the checkpoint has their moving average (train.ema_decay).")
    var rawWeights = false

    var averaged: Bool { !rawWeights }
}
