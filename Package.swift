// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "tokend",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TokenCrypto", targets: ["TokenCrypto"]),
        .library(name: "TokenJWT", targets: ["TokenJWT"]),
        .library(name: "TokenProtocol", targets: ["TokenProtocol"]),
        .library(name: "TokenClient", targets: ["TokenClient"]),
        .executable(name: "tokend", targets: ["tokend"]),
        .executable(name: "tokenctl", targets: ["tokenctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "TokenCrypto", dependencies: ["COpenSSL"]),
        .target(name: "TokenJWT", dependencies: ["TokenCrypto"]),
        .target(name: "TokenProtocol", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        .target(name: "TokenStore", dependencies: [
            "TokenCrypto",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "RedisClient", dependencies: [
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "TokenRedisStore", dependencies: [
            "RedisClient", "TokenStore", "TokenCrypto",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "TokenServer", dependencies: [
            "TokenJWT", "TokenProtocol", "TokenStore",
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "TokenClient", dependencies: [
            "TokenProtocol",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .executableTarget(
            name: "tokend",
            dependencies: [
                "TokenServer", "TokenStore", "TokenCrypto", "TokenProtocol", "RedisClient", "TokenRedisStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "tools/tokend"
        ),
        .executableTarget(
            name: "tokenctl",
            dependencies: [
                "TokenJWT",
                "TokenCrypto",
                "TokenClient",
                "TokenProtocol",
                "TokenStore",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/tokenctl"
        ),
        .target(name: "CFuzzSupport"),
        .executableTarget(
            name: "tokend-fuzz",
            dependencies: [
                "CFuzzSupport", "TokenProtocol", "TokenJWT", "TokenStore", "TokenCrypto", "RedisClient", "TokenRedisStore",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "tools/fuzz-driver"
        ),
        .executableTarget(
            name: "tokenbench",
            dependencies: ["TokenJWT", "TokenStore", .product(name: "NIOEmbedded", package: "swift-nio")],
            path: "tools/tokenbench"
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TokenCryptoTests", dependencies: ["TokenCrypto", "TestSupport"]),
        .testTarget(name: "TokenJWTTests", dependencies: ["TokenJWT", "TestSupport"], exclude: ["Interop"]),
        .testTarget(name: "TokenStoreTests", dependencies: ["TokenStore", .product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(name: "RedisClientTests", dependencies: [
            "RedisClient", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "EndToEndTests", dependencies: [
            "TokenClient", "TokenProtocol", "TestSupport", "TokenJWT",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "TokenServerTests", dependencies: [
            "TokenServer", "TokenProtocol", "TokenStore", "TokenJWT", "TokenCrypto", "TokenRedisStore", "RedisClient", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TokenClientTests", dependencies: [
            "TokenClient", "TokenProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .testTarget(name: "TokenProtocolTests", dependencies: [
            "TokenProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
