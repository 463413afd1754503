import RedisClient

/// The store's read-modify-write steps, each one Lua script over the keys of one login (which
/// share a hash tag, so the script runs on one Redis Cluster node). The rules are the embedded
/// store's (`EmbeddedState`), line for line; times come from the daemon as ARGV[1].
///
/// A login is a hash: k kind (1 session, 2 family), s subject, f fingerprint digest (absent when
/// unbound), c created, t ttl, e expires, m max-expires, r refresh ttl, n current refresh id,
/// g generation (absent: 0), u whether that generation was used (1, or absent), v revoked
/// (0/1). The key expires when the login is forgotten (its tombstone time).
///
/// l holds the key of the family's latest rotation entry: once the family rotates again, or its
/// pair is used, that entry is kept only for its window (`keepOnlyForTheWindow`), as the
/// embedded store does.
///
/// A rotation's dedup entry is a string `<window end ms>:<kept until ms>:<generation>:` then
/// the dedup tag (who may have the pair again) and the sealed pair. Its key expires when it is
/// no longer kept (PX); the times in it are compared with the daemon's clock, as the embedded
/// store compares them.
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
    /// the refusal, if any. ARGV[1] is now (seconds), ARGV[2] the fingerprint digest.
    private static let familyChecks = """
        local r = redis.call('HMGET', KEYS[1], 'k', 's', 'f', 'c', 't', 'e', 'm', 'r', 'n', 'v', 'g', 'u', 'l')
        if not r[1] then return {'unknown'} end
        if r[1] ~= '2' then return {'wrong_kind'} end
        if r[10] == '1' then return {'revoked'} end
        if tonumber(ARGV[1]) >= tonumber(r[7]) then return {'max_lifetime'} end
        if r[3] and r[3] ~= ARGV[2] then return {'fingerprint'} end
        local g = r[11] or '0'
        local u = r[12] or '0'
        """

    /// The reply of an active family.
    private static let familyActive = """
        return {'active', r[2], r[3] or '', r[4], r[5], r[6], r[7], r[8], r[9] or '', g, u}
        """

    /// Shortens the rotation entry named by `key` (an expression; nil for none) to the end of
    /// its window, the time being `milliseconds`: what `EmbeddedState.keepOnlyForTheWindow`
    /// does. The entry shares the login's hash tag, so it is on the script's node.
    private static func keepOnlyForTheWindow(_ key: String, milliseconds: String) -> String {
        """
        if \(key) then
            local w = string.match(redis.call('GET', \(key)) or '', '^(%d+):')
            if w then
                local left = tonumber(w) - tonumber(\(milliseconds))
                if left > 0 then redis.call('PEXPIRE', \(key), left) else redis.call('DEL', \(key)) end
            end
        end
        """
    }

    /// KEYS: login. ARGV: now, fingerprint, the access token's generation ('' for none), now
    /// (ms). An access token of the current generation marks it used (`LoginRecord.marksUsed`).
    /// Returns {status} or {'active', s, f, c, t, e, m, r, n, g, u}.
    static let check = RedisScript(name: "check", source: familyChecks + "\n" + """
        if u ~= '1' and ARGV[3] == g then
            redis.call('HSET', KEYS[1], 'u', '1')
            u = '1'
        """ + "\n" + keepOnlyForTheWindow("r[13]", milliseconds: "ARGV[4]") + "\n" + """
        end
        """ + "\n" + familyActive)

    /// `check` without marking, then the dedup entry of the presented refresh token: a repeat
    /// signs nothing. KEYS: login, dedup entry. ARGV: now, fingerprint, dedup tag, now (ms),
    /// presented refresh id, presented generation ('' for none). Returns what `check` returns,
    /// or {'dedup', sealed} (after the same checks as `rotate`'s).
    static let prepare = RedisScript(name: "prepare", source: familyChecks + "\n"
        + presentation(current: "r[9]", tag: 3, milliseconds: 4, id: 5, generation: 6, onReuse: "") + "\n" + familyActive)

    /// `LoginRecord.presentation` in Lua: returns {'dedup', sealed} for a repeat from the
    /// fingerprint the kept pair was made for ({'fingerprint'} from another), runs `onReuse`
    /// for a reuse, and falls through when the token may rotate. Needs `g` and `u` (the family's generation and used flag) and
    /// `current` (its refresh id); ARGV[tag] is the caller's dedup tag, ARGV[milliseconds]
    /// the time, ARGV[id] and ARGV[generation] the presented token's.
    ///
    /// An entry without the times in front was written before generations (a plain dedup
    /// window, kept by its PX alone): it is a repeat.
    private static func presentation(current: String, tag: Int, milliseconds: Int, id: Int, generation: Int, onReuse: String) -> String {
        """
        local d = redis.call('GET', KEYS[2])
        local reuse = false
        if d then
            local w, k, kg, rest = string.match(d, '^(%d+):(%d+):(%d+):(.*)$')
            if not w then rest = d end
            -- Past its keeping (by the daemon's clock) an entry is as good as gone.
            if not w or tonumber(ARGV[\(milliseconds)]) < tonumber(k) then
                if not w or tonumber(ARGV[\(milliseconds)]) < tonumber(w) or (kg == g and u ~= '1') then
                    -- A repeat: only for the fingerprint the pair was made for.
                    local tag = string.sub(rest, 1, 1) == '1' and 17 or 1
                    if string.sub(rest, 1, tag) ~= ARGV[\(tag)] then return {'fingerprint'} end
                    return {'dedup', string.sub(rest, tag + 1)}
                end
                reuse = true
            end
        end
        if not reuse and (\(current) ~= ARGV[\(id)] or (ARGV[\(generation)] ~= '' and ARGV[\(generation)] ~= g)) then reuse = true end
        if reuse then
            \(onReuse)
        end
        """
    }

    /// KEYS: login, dedup entry. ARGV: now, fingerprint, presented refresh id, new refresh id,
    /// new refresh expiry, sealed pair, window (ms), dedup tag (who may have the pair again),
    /// invalidation channel, origin and session id (published when reuse revokes the family),
    /// now (ms), the rotation grace (ms; '' for the family's access TTL), presented generation
    /// ('' for none). The entry is kept for the grace, at least the window
    /// (`RenewalPolicy.keptMilliseconds`).
    /// Returns {'rotated'}, {'dedup', sealed}, or a refusal.
    static let rotate = RedisScript(name: "rotate", source: """
        local r = redis.call('HMGET', KEYS[1], 'k', 'f', 'm', 'n', 'v', 'g', 'u', 'l', 't')
        if r[1] ~= '2' then return {'unknown'} end
        if r[5] == '1' then return {'revoked'} end
        if tonumber(ARGV[1]) >= tonumber(r[3]) then return {'max_lifetime'} end
        if r[2] and r[2] ~= ARGV[2] then return {'fingerprint'} end
        local g = r[6] or '0'
        local u = r[7] or '0'
        """ + "\n" + presentation(current: "r[4]", tag: 8, milliseconds: 11, id: 3, generation: 13, onReuse: """
            redis.call('HSET', KEYS[1], 'v', '1')
            redis.pcall('PUBLISH', ARGV[9], ARGV[10])
            return {'reuse'}
        """) + "\n" + """
        -- The dedup entry first: a script stops at a failing command without undoing the
        -- ones before it. A window and grace of 0 keep none (the embedded store's entry is dead
        -- on arrival: no lookup finds it).
        local ng = tonumber(g) + 1
        local now = tonumber(ARGV[11])
        local keep = math.max(ARGV[12] == '' and tonumber(r[9]) * 1000 or tonumber(ARGV[12]), tonumber(ARGV[7]))
        if keep > 0 then
            local times = string.format('%d:%d:%d:', now + tonumber(ARGV[7]), now + keep, ng)
            redis.call('SET', KEYS[2], times .. ARGV[8] .. ARGV[6], 'PX', string.format('%d', keep))
        end
        redis.call('HSET', KEYS[1], 'n', ARGV[4], 'e', ARGV[5], 'g', ng, 'u', '0', 'l', KEYS[2])
        """ + "\n" + keepOnlyForTheWindow("r[8]", milliseconds: "ARGV[11]") + "\n" + """
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
