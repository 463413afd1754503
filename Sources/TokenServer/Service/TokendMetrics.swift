import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus
import TokenProtocol
import TokenStore

/// tokend's metrics: recorded through swift-metrics into a Prometheus registry of this daemon's
/// own, and written in the Prometheus text format by the `metrics` operation (`tokenctl stats
/// --prometheus`) and the `--metrics-listen` endpoint.
///
/// Requests are timed as they finish. What the daemon counts anyway (responses by operation
/// and status in `ServerStatistics`, the store, the caches) is read when the metrics are
/// rendered, rather than counted a second time on the request path.
public final class TokendMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// Latency histograms by opcode, made on an operation's first response.
    private let timers = NIOLockedValueBox<[CoreMetrics.Timer?]>(Array(repeating: nil, count: 256))
    /// Last values of counts kept elsewhere, so that their counters advance by the difference.
    private let exported = NIOLockedValueBox<[String: UInt64]>([:])

    let dedupHits: CoreMetrics.Counter
    /// Tokens signed: issues and rotations, never a repeat within the dedup window.
    let tokensSigned: CoreMetrics.Counter
    let reuseDetected: CoreMetrics.Counter
    let journalFsync: CoreMetrics.Timer

    static let latencyBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "tokend_request_duration_seconds": Self.latencyBuckets,
            "tokend_journal_fsync_duration_seconds": [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
            ],
        ]
        self.factory = factory
        dedupHits = CoreMetrics.Counter(label: "tokend_dedup_hits_total", factory: factory)
        tokensSigned = CoreMetrics.Counter(label: "tokend_tokens_signed_total", factory: factory)
        reuseDetected = CoreMetrics.Counter(label: "tokend_reuse_detected_total", factory: factory)
        journalFsync = CoreMetrics.Timer(label: "tokend_journal_fsync_duration_seconds", factory: factory)
    }

    /// Times one response.
    func record(_ opcode: Opcode, nanoseconds: Int64) {
        let timer = timers.withLockedValue { timers in
            if let existing = timers[Int(opcode.rawValue)] { return existing }
            let made = CoreMetrics.Timer(label: "tokend_request_duration_seconds", dimensions: [("op", Self.label(opcode))], factory: factory)
            timers[Int(opcode.rawValue)] = made
            return made
        }
        timer.recordNanoseconds(nanoseconds)
    }

    /// HTTP face requests by route and status code, made on their first use.
    private let httpCounters = NIOLockedValueBox<[String: CoreMetrics.Counter]>([:])

    /// One answer of the HTTP face.
    func httpRequest(route: String, code: UInt) {
        let key = "\(route) \(code)"
        let counter = httpCounters.withLockedValue { counters in
            if let existing = counters[key] { return existing }
            let made = CoreMetrics.Counter(label: "tokend_http_requests_total", dimensions: [("route", route), ("code", String(code))], factory: factory)
            counters[key] = made
            return made
        }
        counter.increment()
    }

    /// An operation's `op` label; `none` for the replies that answer no request (opcode 0).
    private static func label(_ opcode: Opcode) -> String { opcode.rawValue == 0 ? "none" : opcode.name }

    /// One journal fsync.
    func journalSynced(_ elapsed: Duration) {
        let (seconds, attoseconds) = elapsed.components
        journalFsync.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// What `render` reads besides the request metrics.
    struct Reading {
        var store: StoreStatistics
        var server: [String: UInt64]
        var responses: [(opcode: Opcode, status: Status, count: UInt64)]
        var cache: (entries: Int, hits: UInt64, misses: UInt64)
        var keys: Int
        var tracking: InvalidationHub.Statistics
        var snapshot: EmbeddedStore.SnapshotReport?
        var now: Int64
    }

    /// The Prometheus text format of every metric.
    func render(_ reading: Reading) -> String {
        let store = reading.store
        gauge("tokend_sessions_active", store.sessionsActive)
        gauge("tokend_families_active", store.familiesActive)
        gauge("tokend_revoked", store.revoked)
        gauge("tokend_dedup_entries", store.dedupEntries)
        gauge("tokend_records", store.records)
        for name in ["healthy", "cluster", "masters", "keys"] { gauge("tokend_store_redis_\(name)", store.extra["store_redis_\(name)"].map(Int.init)) }
        for name in ["commands", "failures", "redirections"] { advance("tokend_store_redis_\(name)_total", to: store.extra["store_redis_\(name)"]) }
        gauge("tokend_persistence_degraded", store.extra["persistence_degraded"].map(Int.init))
        advance("tokend_persistence_degraded_reads_total", to: store.extra["persistence_degraded_reads"])
        advance("tokend_persistence_refused_writes_total", to: store.extra["persistence_refused_writes"])
        for (opcode, status, count) in reading.responses {
            advance("tokend_requests_total", [("op", Self.label(opcode)), ("status", status.name)], to: count)
        }
        gauge("tokend_keys", reading.keys)
        gauge("tokend_verified_cache_entries", reading.cache.entries)
        advance("tokend_verified_cache_hits_total", to: reading.cache.hits)
        advance("tokend_verified_cache_misses_total", to: reading.cache.misses)
        let lookups = reading.cache.hits + reading.cache.misses
        CoreMetrics.Gauge(label: "tokend_verified_cache_hit_ratio", factory: factory)
            .record(lookups == 0 ? 0 : Double(reading.cache.hits) / Double(lookups))
        gauge("tokend_tracking_connections", reading.tracking.tracking)
        advance("tokend_invalidations_pushed_total", to: reading.tracking.pushed)
        advance("tokend_invalidation_flushes_total", to: reading.tracking.flushes)
        gauge("tokend_connections", reading.server["connections"].map(Int.init))
        advance("tokend_connections_total", to: reading.server["connections_total"])
        gauge("tokend_uptime_seconds", reading.server["uptime_seconds"].map(Int.init))
        if let snapshot = reading.snapshot {
            CoreMetrics.Gauge(label: "tokend_snapshot_duration_seconds", factory: factory).record(snapshot.seconds)
            gauge("tokend_snapshot_age_seconds", Int(max(0, reading.now - snapshot.completedAt)))
            gauge("tokend_snapshot_records", snapshot.records)
        }
        return registry.emitToString()
    }

    private func gauge(_ name: String, _ value: Int?) {
        guard let value else { return }
        CoreMetrics.Gauge(label: name, factory: factory).record(Int64(value))
    }

    /// Moves a counter up to a total kept elsewhere (which only grows).
    private func advance(_ name: String, _ labels: [(String, String)] = [], to total: UInt64?) {
        guard let total else { return }
        let series = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        // Two renders may read their totals in one order and get here in the other: a smaller
        // total than the last exported is stale, and never moves the counter back.
        let (delta, first) = exported.withLockedValue { exported -> (UInt64, Bool) in
            let previous = exported[series]
            guard total > previous ?? 0 else {
                exported[series] = previous ?? 0
                return (0, previous == nil)
            }
            exported[series] = total
            return (total - (previous ?? 0), previous == nil)
        }
        // A counter still at zero is exported too (at 0): a scraper sees it exists.
        guard delta > 0 || first else { return }
        CoreMetrics.Counter(label: name, dimensions: labels, factory: factory).increment(by: Int64(delta))
    }
}
