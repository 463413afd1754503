import TokenClient

/// Runs every lane of every connection at once, then merges what the connections recorded.
enum BenchDriver {
    static func run(_ lanes: [[BenchLane]], on clients: [TokenClient], control: BenchControl) async -> BenchTally {
        let recorders = (0..<min(clients.count, BenchRecorder.maximumCount)).map { _ in BenchRecorder() }
        await withTaskGroup(of: Void.self) { group in
            for (connection, (client, connectionLanes)) in zip(clients, lanes).enumerated() {
                let recorder = recorders[connection % recorders.count]
                for lane in connectionLanes {
                    group.addTask {
                        var lane = lane
                        await lane.run(on: client, control: control, recorder: recorder)
                    }
                }
            }
        }
        var total = BenchTally()
        for recorder in recorders { total.merge(recorder.snapshot) }
        return total
    }
}
