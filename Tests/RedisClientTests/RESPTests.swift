import NIOCore
@testable import RedisClient
import Testing

@Suite struct RESPTests {
    func decode(_ text: String) throws -> (RESPValue?, remaining: Int) {
        var buffer = ByteBuffer(string: text)
        let value = try RESPDecoder.decode(&buffer)
        return (value, buffer.readableBytes)
    }

    @Test func everyReplyType() throws {
        #expect(try decode("+OK\r\n").0 == .simpleString("OK"))
        #expect(try decode("-ERR wrong\r\n").0 == .error("ERR wrong"))
        #expect(try decode(":-42\r\n").0 == .integer(-42))
        #expect(try decode("$5\r\nhe\r\no\r\n").0 == .bulkString(Array("he\r\no".utf8)))
        #expect(try decode("$-1\r\n").0 == .null)
        #expect(try decode("*-1\r\n").0 == .null)
        #expect(try decode("*2\r\n:1\r\n*1\r\n$0\r\n\r\n").0 == .array([.integer(1), .array([.bulkString([])])]))
    }

    @Test func incompleteRepliesWaitAndConsumeNothing() throws {
        let whole = "*3\r\n$3\r\nfoo\r\n:7\r\n+OK\r\n"
        for cut in 0..<whole.utf8.count {
            let (value, remaining) = try decode(String(decoding: Array(whole.utf8.prefix(cut)), as: UTF8.self))
            #expect(value == nil, "cut at \(cut)")
            #expect(remaining == cut)
        }
        let (value, remaining) = try decode(whole + "+next\r\n")
        #expect(value == .array([.bulkString(Array("foo".utf8)), .integer(7), .simpleString("OK")]))
        #expect(remaining == 7)
    }

    @Test func malformedRepliesAreRefused() {
        for bad in ["?x\r\n", ":12a\r\n", "$3\r\nabcd\r\n", "$-2\r\n", "*-5\r\n", "+OK\rX", String(repeating: "*1\r\n", count: 20) + ":1\r\n"] {
            #expect(throws: RESPError.self, "\(bad.debugDescription)") { _ = try decode(bad) }
        }
    }

    @Test func commandsEncodeAsArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RedisCommand("SET", .bytes([0, 13, 10]), .integer(-5)).encode(into: &buffer)
        #expect(buffer.readString(length: buffer.readableBytes) == "*3\r\n$3\r\nSET\r\n$3\r\n\u{0}\r\n\r\n$2\r\n-5\r\n")
    }

    @Test func hashSlotsMatchRedis() {
        // The CRC16-XMODEM check value, and slots redis-cli CLUSTER KEYSLOT reports.
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(HashSlot.of(Array("foo".utf8)) == 12182)
        #expect(HashSlot.of(Array("{user1000}.following".utf8)) == HashSlot.of(Array("{user1000}.followers".utf8)))
        // An empty first {} makes the whole key the tag: not "bar" (slot 5061). The slots are
        // redis-cli CLUSTER KEYSLOT's answers (Redis 7.0).
        #expect(HashSlot.of(Array("foo{}{bar}".utf8)) == 8363)
        #expect(HashSlot.of(Array("foo{}{bar}".utf8)) != HashSlot.of(Array("bar".utf8)))
        #expect(HashSlot.tag(of: Array("foo{}{bar}".utf8)).elementsEqual("foo{}{bar}".utf8))
        #expect(HashSlot.of(Array("foo{{bar}}zap".utf8)) == 4015)
        #expect(HashSlot.tag(of: Array("foo{{bar}}zap".utf8)).elementsEqual("{bar".utf8))
        #expect(HashSlot.of(Array("{user1000}.following".utf8)) == 3443)
        #expect(HashSlot.tag(of: Array("tokend:{abc}:r:1".utf8)).elementsEqual("abc".utf8))
    }

    @Test func endpoints() throws {
        #expect(try RedisEndpoint(url: "redis://h:7000/3") == RedisEndpoint(address: .tcp(host: "h", port: 7000), database: 3))
        #expect(try RedisEndpoint(url: "redis://alice@h") == RedisEndpoint(address: .tcp(host: "h", port: 6379), user: "alice"))
        #expect(try RedisEndpoint(url: "redis://[::1]:6380") == RedisEndpoint(address: .tcp(host: "::1", port: 6380)))
        #expect(try RedisEndpoint(url: "redis+unix:///run/r.sock?db=2") == RedisEndpoint(address: .unix(path: "/run/r.sock"), database: 2))
        for bad in ["http://h", "redis://alice:secret@h", "redis://h:0", "redis://h/x", "redis+unix://relative", "redis://"] {
            #expect(throws: RedisEndpointError.self, "\(bad)") { _ = try RedisEndpoint(url: bad) }
        }
        // The refusal of a password in the URL does not repeat it.
        do {
            _ = try RedisEndpoint(url: "redis://alice:hunter2@h")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }
}
