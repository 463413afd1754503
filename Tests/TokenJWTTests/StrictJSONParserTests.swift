import Testing
import TokenJWT

@Suite struct StrictJSONParserTests {
    func parse(_ text: String) throws -> JSONObject {
        try StrictJSONParser().parseObject(Array(text.utf8))
    }

    @Test func acceptsStrictJSON() throws {
        let object = try parse(#" { "a" : [1, -0.5e+3, true, false, null, {"b": "\u00e9\ud83d\ude00\n"}] } "#)
        guard case .array(let values)? = object["a"] else { Issue.record("no array"); return }
        #expect(values.count == 6)
        #expect(values[1] == .number("-0.5e+3"))
        #expect(values[5].objectValue?["b"] == .string("é😀\n"))
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":01}"#, #"{"a":1.}"#, #"{"a":.5}"#, #"{"a":+1}"#, #"{"a":NaN}"#,
        #"{"a":"\ud800"}"#, #"{"a":"\udc00x"}"#, #"{"a":"\x"}"#, "{\"a\":\"\t\"}", #"{"a":1,}"#,
        #"{'a':1}"#, #"{"a":1}{"#, #"{"a":tru}"#, "[1]", #""s""#, "", "{", #"{"a"}"#, #"{"a":[1,]}"#,
    ])
    func refuses(_ text: String) {
        #expect(throws: StrictJSONParser.Error.self) { try parse(text) }
    }

    @Test func refusesInvalidUTF8() {
        for bytes: [UInt8] in [[0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x22, 0x7D], [0x7B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x3A, 0x31, 0x7D]] {
            #expect(throws: StrictJSONParser.Error.self) { try StrictJSONParser().parseObject(bytes) }
        }
    }

    @Test func depthLimit() throws {
        let parser = StrictJSONParser(maximumDepth: 4)
        _ = try parser.parseObject(Array(#"{"a":[[{"b":1}]]}"#.utf8))
        #expect(throws: StrictJSONParser.Error.self) { try parser.parseObject(Array(#"{"a":[[[{"b":1}]]]}"#.utf8)) }
    }

    @Test func serializesBack() throws {
        let object = try parse(#"{"a":"q\"\\\u0001","b":[1,{"c":null}]}"#)
        #expect(JSONValue.object(object).json == #"{"a":"q\"\\\u0001","b":[1,{"c":null}]}"#)
    }
}
