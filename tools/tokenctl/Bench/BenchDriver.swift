import TokenClient

/// Runs every lane of every connection at once and merges what they measured: each lane's
/// tally into its connection's, then the connections' into one.
enum BenchDriver {
    static func run(_ lanes: [[BenchLane]], on clients: [TokenClient], control: BenchControl) async -> BenchTally {
        await withTaskGroup(of: BenchTally.self) { group in
            for (client, connectionLanes) in zip(clients, lanes) {
                group.addTask { await run(connection: connectionLanes, on: client, control: control) }
            }
            var total = BenchTally()
            for await tally in group { total.merge(tally) }
            return total
        }
    }

    /// One connection: its lanes share the client, keeping `-P` requests in flight on it.
    private static func run(connection lanes: [BenchLane], on client: TokenClient, control: BenchControl) async -> BenchTally {
        await withTaskGroup(of: BenchTally.self) { group in
            for lane in lanes {
                group.addTask {
                    var lane = lane
                    return await lane.run(on: client, control: control)
                }
            }
            var total = BenchTally()
            for await tally in group { total.merge(tally) }
            return total
        }
    }
}
