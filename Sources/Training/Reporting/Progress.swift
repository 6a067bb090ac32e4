import Distributed
import Foundation

/// The one-line live display: step, loss, learning rate, throughput, data-wait vs compute, ETA.
/// On a terminal it rewrites one line; in a log file it prints a line each time it is updated.
struct ProgressLine {
    let totalSteps: Int
    /// Shows nothing (the ranks of a data-parallel job other than 0).
    var silent = false
    /// Not under mpirun, which gives its ranks a pseudo-terminal wherever its own output goes.
    let interactive = isatty(STDOUT_FILENO) != 0 && !Job.launchedByMPI

    func render(step: Int, loss: Double, lr: Double, samplesPerSecond: Double, dataShare: Double, secondsPerStep: Double) -> String {
        let eta = Double(totalSteps - step) * secondsPerStep
        return String(format: "step %d/%d | loss %.4f | lr %.2e | %.0f samples/s | data %.0f%% compute %.0f%% | ETA %@",
                      step, totalSteps, loss, lr, samplesPerSecond, dataShare * 100, (1 - dataShare) * 100, duration(eta) as NSString)
    }

    func show(_ line: String) {
        guard !silent else { return }
        if interactive {
            FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            print(line)
            fflush(nil)  // a log file (nohup, a job scheduler) sees each line as it happens
        }
    }

    /// Ends an interactive line before other output.
    func finish() { if interactive && !silent { print("") } }
}

/// 3725 s → "1:02:05"
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}
