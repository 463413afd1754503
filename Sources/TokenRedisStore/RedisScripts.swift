import RedisClient

/// The store's read-modify-write steps, each one Lua script over the keys of one login (which
/// share a hash tag, so the script runs on one Redis Cluster node). The rules are the embedded
/// store's (`EmbeddedState`), line for line; times come from the daemon as ARGV[1].
///
/// A login is a hash: k kind (1 session, 2 family), s subject, f fingerprint digest (absent when
/// unbound), c created, t ttl, e expires, m max-expires, r refresh ttl, n current refresh id,
/// v revoked (0/1). The key expires when the login is forgotten (its tombstone time).
enum RedisScripts {
    /// KEYS: login. ARGV: field/value pairs..., forget-at.
    static let create = RedisScript(name: "create", source: """
        local n = #ARGV
        redis.call('HSET', KEYS[1], unpack(ARGV, 1, n - 1))
        redis.call('EXPIREAT', KEYS[1], ARGV[n])
        return 1
        """)

    /// KEYS: subject index, a sorted set of login keys scored by when each is forgotten. ARGV:
    /// login key, forget-at, now. Drops the members already forgotten, so that a subject that
    /// logs in all day keeps a set no larger than its live logins; the index lives as long as
    /// its longest login.
    static let index = RedisScript(name: "index", source: """
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
        local t = redis.call('EXPIRETIME', KEYS[1])
        if t < tonumber(ARGV[2]) then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
        return 1
        """)

    /// KEYS: login. ARGV: now, fingerprint ('' for none), explicit (1/0), renew-below, renew-by,
    /// the token's subject (compared byte for byte before anything is renewed).
    /// Returns {status} or {'active', subject, expires, max-expires, renewed}. The renewal is
    /// `LoginRecord.renewalTarget`'s.
    static let touch = RedisScript(name: "touch", source: """
        local r = redis.call('HMGET', KEYS[1], 'k', 's', 'f', 't', 'e', 'm', 'v')
        if not r[1] then return {'unknown'} end
        if r[1] ~= '1' then return {'wrong_kind'} end
        if r[7] == '1' then return {'revoked'} end
        local now = tonumber(ARGV[1])
        local m = tonumber(r[6])
        if now >= m then return {'max_lifetime'} end
        if r[3] and r[3] ~= ARGV[2] then return {'fingerprint'} end
        if r[2] ~= ARGV[6] then return {'subject'} end
        local e = tonumber(r[5])
        if now >= e then return {'idle'} end
        local target = e
        if ARGV[3] == '1' then
            target = math.min(now + tonumber(r[4]), m)
        elseif e - now < tonumber(ARGV[4]) then
            target = math.min(e + tonumber(ARGV[5]), now + tonumber(r[4]), m)
        end
        local renewed = 0
        if target > e then
            redis.call('HSET', KEYS[1], 'e', target)
            e = target
            renewed = 1
        end
        return {'active', r[2], e, m, renewed}
        """)

    /// A family's checks, shared by `check` and `prepare`: reads the login into `r` and returns
    /// the refusal, if any.
    private static let familyChecks = """
        local r = redis.call('HMGET', KEYS[1], 'k', 's', 'f', 'c', 't', 'e', 'm', 'r', 'n', 'v')
        if not r[1] then return {'unknown'} end
        if r[1] ~= '2' then return {'wrong_kind'} end
        if r[10] == '1' then return {'revoked'} end
        if tonumber(ARGV[1]) >= tonumber(r[7]) then return {'max_lifetime'} end
        if r[3] and r[3] ~= ARGV[2] then return {'fingerprint'} end
        """

    /// The reply of an active family.
    private static let familyActive = """
        return {'active', r[2], r[3] or '', r[4], r[5], r[6], r[7], r[8], r[9] or ''}
        """

    /// KEYS: login. ARGV: now, fingerprint. Returns {status} or {'active', s, f, c, t, e, m, r, n}.
    static let check = RedisScript(name: "check", source: familyChecks + "\n" + familyActive)

    /// `check`, then the dedup entry of the presented refresh token: a repeat signs nothing.
    /// KEYS: login, dedup entry. ARGV: now, fingerprint, dedup tag. Returns what `check`
    /// returns, or {'dedup', sealed} (after the same checks as `rotate`'s).
    static let prepare = RedisScript(name: "prepare", source: familyChecks + "\n" + repeated(tagArgument: 3) + "\n" + familyActive)

    /// A repeat within the dedup window (KEYS[2]): the kept pair, for the fingerprint it was
    /// made for only (`ARGV[tagArgument]`: the dedup tag). Shared by `prepare` and `rotate`.
    private static func repeated(tagArgument: Int) -> String {
        """
        local d = redis.call('GET', KEYS[2])
        if d then
            local tag = string.sub(d, 1, 1) == '1' and 17 or 1
            if string.sub(d, 1, tag) ~= ARGV[\(tagArgument)] then return {'fingerprint'} end
            return {'dedup', string.sub(d, tag + 1)}
        end
        """
    }

    /// KEYS: login, dedup entry. ARGV: now, fingerprint, presented refresh id, new refresh id,
    /// new refresh expiry, sealed pair, window (ms), dedup tag (who may have the pair again),
    /// invalidation channel, origin and session id (published when reuse revokes the family).
    /// Returns {'rotated'}, {'dedup', sealed}, or a refusal.
    static let rotate = RedisScript(name: "rotate", source: """
        local r = redis.call('HMGET', KEYS[1], 'k', 'f', 'm', 'n', 'v')
        if r[1] ~= '2' then return {'unknown'} end
        if r[5] == '1' then return {'revoked'} end
        if tonumber(ARGV[1]) >= tonumber(r[3]) then return {'max_lifetime'} end
        if r[2] and r[2] ~= ARGV[2] then return {'fingerprint'} end
        """ + "\n" + repeated(tagArgument: 8) + "\n" + """
        if r[4] ~= ARGV[3] then
            redis.call('HSET', KEYS[1], 'v', '1')
            redis.pcall('PUBLISH', ARGV[9], ARGV[10])
            return {'reuse'}
        end
        -- The dedup entry first: a script stops at a failing command without undoing the
        -- ones before it. A window of 0 keeps none, as the embedded store does.
        if tonumber(ARGV[7]) > 0 then redis.call('SET', KEYS[2], ARGV[8] .. ARGV[6], 'PX', ARGV[7]) end
        redis.call('HSET', KEYS[1], 'n', ARGV[4], 'e', ARGV[5])
        return {'rotated'}
        """)

    /// KEYS: login. ARGV: invalidation channel, origin and session id. Returns -1 when unknown,
    /// 0 when already revoked, 1 when revoked now (and then tells every daemon's near caches).
    /// The publish is `pcall`ed: a user whose ACL forbids it still revokes (the revoke is
    /// written first, and a script does not undo what it wrote).
    static let revoke = RedisScript(name: "revoke", source: """
        local v = redis.call('HGET', KEYS[1], 'v')
        if not v then return -1 end
        if v == '1' then return 0 end
        redis.call('HSET', KEYS[1], 'v', '1')
        redis.pcall('PUBLISH', ARGV[1], ARGV[2])
        return 1
        """)

    static let all = [create, index, touch, check, prepare, rotate, revoke]
}
