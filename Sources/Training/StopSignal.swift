import Foundation
import Synchronization

/// Ctrl-C and SIGTERM ask the loop to stop after the current step (it then saves and exits); a
/// second Ctrl-C exits at once.
enum StopSignal {
    static let requested = Atomic<Int32>(0)

    static func install() {
        requested.store(0, ordering: .relaxed)
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { received in
                if StopSignal.requested.exchange(received, ordering: .relaxed) != 0 && received == SIGINT { _exit(130) }
            }
        }
    }

    /// Back to the default handlers (and no pending stop) once a run is over.
    static func uninstall() {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        requested.store(0, ordering: .relaxed)
    }

    /// The signal that asked to stop, if any.
    static var pending: Int32? {
        let s = requested.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }
}
