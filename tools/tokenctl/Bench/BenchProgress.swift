import Foundation

/// The progress line on stderr, once a second: elapsed time, requests completed and the
/// current rate. On a terminal it is rewritten in place (`\r`); to a file or a pipe it is one
/// plain line per second.
struct BenchProgress: Sendable {
    let operation: BenchOperation
    let isTerminal = isatty(STDERR_FILENO) == 1

    /// Reports until cancelled.
    func run(control: BenchControl, start: UInt64) async {
        var previous = (time: start, completed: 0)
        while true {
            do {
                try await Task.sleep(for: .seconds(1))
            } catch {
                return
            }
            let now = BenchClock.now()
            let completed = control.completed
            let rate = Double(completed - previous.completed) / max(BenchClock.seconds(now - previous.time), 1e-9)
            previous = (now, completed)
            let line = "\(operation.rawValue): \(String(format: "%.1f", BenchClock.seconds(now - start)))s"
                + "  \(completed) completed  \(String(format: "%.0f", rate)) ops/s"
            write(isTerminal ? "\r\(line)\u{1B}[K" : "\(line)\n")
        }
    }

    /// Clears the line on a terminal, so that the summary starts on a clean one.
    func finish() {
        if isTerminal { write("\r\u{1B}[K") }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
