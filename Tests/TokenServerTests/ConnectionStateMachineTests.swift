import NIOCore
import Testing
@testable import TokenServer
import TokenProtocol

/// The connection's flow control and lifetime, with no channel at all.
@Suite struct ConnectionStateMachineTests {
    static func ping(_ id: UInt32) -> Request { Request(opcode: .ping, id: id) }

    @Test func requestsStartInOrderUpToTheInFlightLimit() {
        var state = ConnectionStateMachine(maxInFlight: 2)
        for id in UInt32(1)...3 { state.received(Self.ping(id)) }
        let started1 = state.startNext(writable: true)
        #expect(started1?.id == 1)
        let started2 = state.startNext(writable: true)
        #expect(started2?.id == 2)
        let started3 = state.startNext(writable: true)
        #expect(started3 == nil, "two in flight: the third waits")
        let reading1 = state.readAction(writable: true)
        #expect(reading1 == .stopReading, "nothing more is read while a request waits")
        state.finished()
        let started4 = state.startNext(writable: true)
        #expect(started4?.id == 3)
        state.finished()
        state.finished()
        let reading2 = state.readAction(writable: true)
        #expect(reading2 == .startReading)
        let reading3 = state.readAction(writable: true)
        #expect(reading3 == .none, "said once")
    }

    @Test func nothingStartsWhileTheClientTakesNoAnswers() {
        var state = ConnectionStateMachine(maxInFlight: 8)
        state.received(Self.ping(1))
        let started1 = state.startNext(writable: false)
        #expect(started1 == nil)
        let reading1 = state.readAction(writable: false)
        #expect(reading1 == .stopReading)
        let started2 = state.startNext(writable: true)
        #expect(started2?.id == 1)
    }

    @Test func drainingAnswersWhatWasReceivedThenClosesOnce() {
        var state = ConnectionStateMachine(maxInFlight: 8)
        state.received(Self.ping(1))
        state.received(Self.ping(2))
        let started1 = state.startNext(writable: true)
        #expect(started1?.id == 1)
        state.drain()
        state.received(Self.ping(3))
        let reading1 = state.readAction(writable: true)
        #expect(reading1 == .stopReading)
        let closes1 = state.closeIfDrained()
        #expect(!closes1, "one in flight, one queued")
        let started2 = state.startNext(writable: true)
        #expect(started2?.id == 2)
        let started3 = state.startNext(writable: true)
        #expect(started3 == nil, "the request after the drain is dropped")
        state.finished()
        let closes2 = state.closeIfDrained()
        #expect(!closes2)
        state.finished()
        let closes3 = state.closeIfDrained()
        #expect(closes3)
        let closes4 = state.closeIfDrained()
        #expect(!closes4, "said once")
        #expect(state.phase == .closed)
    }

    @Test func anIdleConnectionClosesUnlessItTracksOrWorks() {
        var state = ConnectionStateMachine(maxInFlight: 8)
        let closes1 = state.closeIfIdle(idleFor: .seconds(4), timeout: .seconds(5))
        #expect(!closes1)
        state.received(Self.ping(1))
        _ = state.startNext(writable: true)
        let closes2 = state.closeIfIdle(idleFor: .seconds(9), timeout: .seconds(5))
        #expect(!closes2, "a request in flight")
        state.finished()
        let registers1 = state.beginTracking()
        #expect(registers1)
        let registers2 = state.beginTracking()
        #expect(!registers2, "registered once")
        let closes3 = state.closeIfIdle(idleFor: .seconds(9), timeout: .seconds(5))
        #expect(!closes3, "a tracking connection stays")

        var quiet = ConnectionStateMachine(maxInFlight: 8)
        let closes4 = quiet.closeIfIdle(idleFor: .seconds(5), timeout: .seconds(5))
        #expect(closes4)
        let started = quiet.startNext(writable: true)
        #expect(quiet.phase == .closed && started == nil)
    }
}
