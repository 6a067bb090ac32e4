import Autograd

/// Logs the BLAS kernel once per test process, so every test log says what it ran on.
let logBLASOnce: Void = { print("[ModelsTests] \(BLAS.summary)") }()
