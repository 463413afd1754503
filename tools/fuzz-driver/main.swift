// tokend-fuzz TARGET [libFuzzer arguments or files...]
//
// Fuzz targets for the code that reads untrusted bytes. Built with -sanitize=fuzzer,address
// (tools/fuzz) it is a libFuzzer binary; built normally it replays the files and directories
// it is given, once each (the regression tests run it over fuzz/corpus and fuzz/regressions).
//
//   frames  the frame decoder, request and response parsing, every typed request decoder
//   jwt     the compact JWS splitter, strict base64url and JSON, claims, the verifier
//   state   the snapshot and journal readers (headers, frames, checksums, record payloads)
//   resp    the RESP decoder and the shared store's record parser (replies from Redis)

import CFuzzSupport
import Foundation
import NIOCore
import TokenCrypto
import TokenJWT
import TokenProtocol
import TokenStore

let targets: [String: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32] = [
    "frames": { data, size in FuzzTargets.frames(UnsafeRawBufferPointer(start: data, count: size)); return 0 },
    "jwt": { data, size in FuzzTargets.jwt(UnsafeRawBufferPointer(start: data, count: size)); return 0 },
    "state": { data, size in FuzzTargets.state(UnsafeRawBufferPointer(start: data, count: size)); return 0 },
    "resp": { data, size in FuzzTargets.resp(UnsafeRawBufferPointer(start: data, count: size)); return 0 },
]

var arguments = CommandLine.arguments
guard arguments.count >= 2, let target = targets[arguments[1]] else {
    FileHandle.standardError.write(Data("usage: tokend-fuzz \(targets.keys.sorted().joined(separator: "|")) [libFuzzer arguments | files...]\n".utf8))
    exit(2)
}
arguments.remove(at: 1)
var argc = Int32(arguments.count)
var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
let status = cArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv, target)
}
exit(status)
