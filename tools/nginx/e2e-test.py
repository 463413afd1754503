#!/usr/bin/env python3
"""End-to-end test of tokend's HTTP face behind a real nginx running tools/nginx/tokend.conf.

Starts a real tokend (TOKEND_BIN, default .build/debug/tokend), a small backend (http.server on 127.0.0.1) that echoes the path and the X-Tokend-*
headers it received, and nginx in the foreground on a free 127.0.0.1 port with the shipped site
file (socket path, listen address and backend address substituted). Then checks, through nginx
and directly on tokend's HTTP socket, what docs/http.md promises, and the article's section 4:
twenty requests at once with the same expired access cookie get the same new pair, one
rotation; the old refresh token after the dedup window is reuse and revokes the family.

Usage: python3 tools/nginx/e2e-test.py
Needs nginx (Debian: apt-get install nginx; it has auth_request), from $NGINX_BIN, PATH or
/usr/sbin/nginx. Without nginx the test fails, unless TOKEND_NGINX_OPTIONAL=1, when it says so
and passes. One PASS/FAIL line per check; the exit status is 1 if any check failed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

REPO = harness.REPO
sys.path.insert(0, str(REPO / "tools" / "python"))
from tokend_client import Client, http_fingerprint  # noqa: E402

ACCESS_TTL = 3      # seconds; the new pair of a rotation must outlive the reuse checks after it
DEDUP_WINDOW = 1    # seconds
THREADS = 20
TIMEOUT = 30.0      # any one HTTP exchange; generous for a loaded two-core machine
FINGERPRINT_HEADERS = ["User-Agent"]
UA = "Mozilla/5.0 (e2e; fp-8c41d2)"
OTHER_UA = "curl/8.5.0 (e2e; other-77f0)"


# --- reporting --------------------------------------------------------------------------------

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok or not detail else f": {detail}"),
          flush=True)
    if not ok:
        failures.append(name)
    return ok


def scenario(name: str, body: Callable[[], None]) -> None:
    """Run a group of checks; an exception in it is one more failure, and the next group runs."""
    try:
        body()
    except Exception:  # noqa: BLE001 - reported, then the next group
        check(f"{name} (ran to the end)", False, traceback.format_exc().strip())


# --- the backend --------------------------------------------------------------------------------

@dataclass
class Seen:
    path: str
    tokend_headers: list[tuple[str, str]]


class Backend:
    """The application behind nginx: answers 200 with JSON of the path and the X-Tokend-*
    headers it got (names lower-cased, every line), and remembers every request."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                headers = [(k.lower(), v) for k, v in self.headers.items()
                           if k.lower().startswith(("x-tokend", "x_tokend"))]
                with lock:
                    seen.append(Seen(self.path, headers))
                subjects = [v for k, v in headers if k == "x-tokend-subject"]
                body = json.dumps({"path": self.path, "subject": subjects,
                                   "tokend_headers": headers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = answer

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # http.server listens with a backlog of 5: twenty connections nginx opens at once
            # would wait a second for a SYN retransmission.
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        return len(self.seen)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- HTTP helpers ------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    sent_secrets: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.headers) + "\n\n" + \
            self.body.decode("latin-1")

    def summary(self) -> str:
        return f"{self.status} {self.headers} {self.body[:300]!r}"


replies: list[Reply] = []  # everything tokend or nginx answered, for the no-echo check


def exchange(conn: http.client.HTTPConnection, method: str, path: str,
             headers: dict[str, str], body: bytes | None = None,
             secrets: list[str] | None = None) -> Reply:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    reply = Reply(response.status, list(response.getheaders()), response.read(), secrets or [])
    replies.append(reply)
    return reply


class Site:
    """Requests to nginx."""

    def __init__(self, port: int) -> None:
        self.port = port

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def get(self, path: str = "/", *, bearer: str | None = None,
            cookies: dict[str, str] | None = None, ua: str | None = UA,
            extra: dict[str, str] | None = None,
            conn: http.client.HTTPConnection | None = None) -> Reply:
        headers: dict[str, str] = {}
        secrets: list[str] = []
        if ua is not None:
            headers["User-Agent"] = ua
            secrets.append(ua)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
            secrets.append(bearer)
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            secrets.extend(cookies.values())
        headers.update(extra or {})
        own = conn is None
        conn = conn or self.connection()
        try:
            return exchange(conn, "GET", path, headers, secrets=secrets)
        finally:
            if own:
                conn.close()


def tokend_direct(http_socket: str, method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None, secrets: list[str] | None = None) -> Reply:
    conn = harness.UnixHTTPConnection(http_socket, timeout=TIMEOUT)
    try:
        return exchange(conn, method, path, headers or {}, body, secrets)
    finally:
        conn.close()


def cookie_values(reply: Reply) -> dict[str, str]:
    """name -> value of the response's Set-Cookie headers."""
    values = {}
    for line in reply.all("Set-Cookie"):
        name, _, rest = line.partition("=")
        values[name.strip()] = rest.split(";", 1)[0].strip()
    return values


def backend_subjects(reply: Reply) -> list[str]:
    return list(reply.json()["subject"]) if reply.status == 200 else []


def decode_claims(value: str | None) -> dict[str, Any]:
    """X-Tokend-Claims: the claims set as base64url JSON; {} if absent or not that."""
    try:
        return dict(json.loads(base64.urlsafe_b64decode((value or "") + "===")))
    except ValueError:
        return {}


def wait_until(unix_time: float) -> None:
    delay = unix_time - time.time()
    if delay > 0:
        time.sleep(delay)


def tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    i = len(signature) // 2
    swapped = "B" if signature[i] != "B" else "C"
    return ".".join((head, payload, signature[:i] + swapped + signature[i + 1:]))


def expect_refusal(site: Site, name: str, status_name: str, **request: Any) -> Reply:
    reply = site.get(**request)
    www = reply.header("WWW-Authenticate") or ""
    check(f"{name}: 401 X-Tokend-Status {status_name}",
          reply.status == 401 and reply.header("X-Tokend-Status") == status_name,
          reply.summary())
    check(f"{name}: WWW-Authenticate names it",
          www.startswith('Bearer realm="tokend"') and (
              f'error_description="{status_name}"' in www if status_name != "missing_token"
              else "error=" not in www), www)
    return reply


# --- the test ----------------------------------------------------------------------------------

class World:
    def __init__(self, tokend: harness.Tokend, nginx: harness.Nginx, backend: Backend) -> None:
        self.tokend = tokend
        self.backend = backend
        self.site = Site(nginx.port)
        self.client = Client(tokend.socket_path, timeout=TIMEOUT, client_name="nginx e2e")
        self.fp = http_fingerprint({"User-Agent": UA}, FINGERPRINT_HEADERS)


def through_nginx(w: World) -> None:
    site = w.site
    session = w.client.issue("alice", fingerprint=w.fp, claims={"role": "admin"})
    token = session.token
    assert token is not None

    reply = site.get("/hello?x=1", bearer=token)
    check("session token (Bearer): 200 from the backend with the subject",
          reply.status == 200 and backend_subjects(reply) == ["alice"]
          and reply.json()["path"] == "/hello?x=1", reply.summary())
    got = dict(reply.json()["tokend_headers"])
    check("backend gets X-Tokend-Session (the session id) and nothing of tokend's answer",
          got.get("x-tokend-session") == session.session_id
          and got.get("x-tokend-expires-at") == str(session.expires_at)
          and not any(k in got for k in ("x-tokend-status", "x-tokend-access-token",
                                         "x-tokend-set-cookie-access")), str(got))
    claims = decode_claims(got.get("x-tokend-claims"))
    check("backend gets X-Tokend-Claims (--http-claims-header), base64url JSON of the claims",
          claims.get("sub") == "alice" and claims.get("sid") == session.session_id
          and claims.get("role") == "admin", str(got.get("x-tokend-claims")))
    check("no rotation, no Set-Cookie; X-Tokend-Status ok to the client",
          reply.all("Set-Cookie") == [] and reply.header("X-Tokend-Status") == "ok",
          reply.summary())

    pair = w.client.issue("bob", "pair", fingerprint=w.fp)
    assert pair.access_token is not None
    reply = site.get("/cookie", cookies={"access": pair.access_token})
    check("access token in the access cookie: 200 with the subject",
          reply.status == 200 and backend_subjects(reply) == ["bob"], reply.summary())

    before = w.backend.count()
    expect_refusal(site, "no token", "missing_token")
    expect_refusal(site, "garbage token", "malformed_token", bearer="not-a-jwt")
    expect_refusal(site, "bad signature", "bad_signature", bearer=tamper_signature(token))
    expect_refusal(site, "other fingerprint (User-Agent)", "fingerprint_mismatch", bearer=token,
                   ua=OTHER_UA)
    revoked = w.client.issue("carol", fingerprint=w.fp)
    assert revoked.token is not None
    w.client.revoke(revoked.token)
    expect_refusal(site, "revoked session", "revoked", bearer=revoked.token)
    check("no refused request reached the backend", w.backend.count() == before,
          f"{w.backend.count() - before} did")

    # A client claiming an identity itself.
    forged = {"X-Tokend-Subject": "mallory", "X-Tokend-Session": "forged-sid",
              "X-Tokend-Status": "ok", "X-Tokend-Claims": "forged",
              "X-Tokend-Access-Token": "forged", "X_Tokend_Subject": "mallory"}
    before = w.backend.count()
    reply = site.get("/forged", extra=forged)
    check("forged X-Tokend-Subject without a token: 401",
          reply.status == 401 and reply.header("X-Tokend-Status") == "missing_token",
          reply.summary())
    check("forged X-Tokend-Subject without a token: backend not reached",
          w.backend.count() == before)
    reply = site.get("/forged", bearer=token, extra=forged)
    got_pairs = reply.json()["tokend_headers"] if reply.status == 200 else []
    check("forged headers with a valid token: backend sees the real subject only",
          reply.status == 200 and backend_subjects(reply) == ["alice"]
          and dict(got_pairs).get("x-tokend-session") == session.session_id
          and decode_claims(dict(got_pairs).get("x-tokend-claims")).get("sub") == "alice"
          and not any(v in ("mallory", "forged", "forged-sid") or k.startswith("x_")
                      or k in ("x-tokend-status", "x-tokend-access-token")
                      for k, v in got_pairs), str(got_pairs))
    check("the backend never saw mallory",
          not any(v == "mallory" for s in w.backend.seen for _, v in s.tokend_headers))


def section_4(w: World) -> None:
    """Twenty requests at once with one expired access cookie and its refresh cookie."""
    site = w.site
    pair = w.client.issue("dave", "pair", fingerprint=w.fp)
    lone = w.client.issue("erin", "pair", fingerprint=w.fp)  # expires with it; no refresh sent
    access, refresh = pair.access_token, pair.refresh_token
    assert access is not None and refresh is not None and lone.access_token is not None

    reply = site.get("/s4/valid", cookies={"access": access, "refresh": refresh})
    check("section 4: valid access cookie with refresh cookie: 200, nothing rotated",
          reply.status == 200 and backend_subjects(reply) == ["dave"]
          and reply.all("Set-Cookie") == [], reply.summary())

    stats = w.client.stats()
    refreshed0 = stats.status("refreshed")
    reused0 = stats.status("reuse_detected")
    conns = [site.connection() for _ in range(THREADS)]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(THREADS + 1)
    outcomes: list[Reply | BaseException | None] = [None] * THREADS

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            outcomes[i] = site.get(f"/s4/{i}", cookies={"access": access, "refresh": refresh},
                                   conn=conns[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    # The daemon counts whole seconds: expired once now >= exp; the access token's exp is a
    # whole second, so the requests start at the beginning of one, with the rest of it to run
    # in (a rotation recorded at second t is handed out again while now < t + 1).
    wait_until(pair.expires_at + 0.02)
    barrier.wait(timeout=60)
    started = time.time()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    ended = time.time()
    for conn in conns:
        conn.close()

    errors = [o for o in outcomes if not isinstance(o, Reply)]
    results = [o for o in outcomes if isinstance(o, Reply)]
    check(f"section 4: all {THREADS} requests answered", not errors, repr(errors[:3]))
    check(f"section 4: all {THREADS} got 200 from the backend as dave",
          len(results) == THREADS and all(r.status == 200 and backend_subjects(r) == ["dave"]
                                          for r in results),
          "; ".join(r.summary() for r in results if r.status != 200)[:1500])
    pairs = {(cookie_values(r).get("access"), cookie_values(r).get("refresh")) for r in results}
    new_access, new_refresh = next(iter(pairs)) if len(pairs) == 1 else (None, None)
    check(f"section 4: every response sets both cookies, the same new pair in all {THREADS}"
          " (one rotation)",
          len(pairs) == 1 and bool(new_access) and bool(new_refresh)
          and all(len(r.all("Set-Cookie")) == 2 for r in results),
          f"{len(pairs)} distinct pairs")
    check("section 4: the new pair is new",
          new_access not in (None, access, refresh) and new_refresh not in (None, access, refresh))
    if results:
        lines = results[0].all("Set-Cookie")
        check("section 4: Set-Cookie carries the configured attributes (default)",
              all(("HttpOnly" in line and "Path=/" in line) for line in lines) and len(lines) == 2,
              str([line.split(";", 1)[1:] for line in lines]))
        check("section 4: X-Tokend-Status refreshed to the client",
              all(r.header("X-Tokend-Status") == "refreshed" for r in results))
    print(f"     (the {THREADS} requests took {ended - started:.2f} s)", flush=True)
    if ended - started >= DEDUP_WINDOW and len(pairs) != 1:
        print(f"NOTE the {THREADS} requests took longer than the {DEDUP_WINDOW} s dedup window "
              f"(a machine too slow)")
    stats = w.client.stats()
    check(f"section 4: tokend counted {THREADS} refreshed, no reuse",
          stats.status("refreshed") - refreshed0 == THREADS
          and stats.status("reuse_detected") == reused0,
          f"refreshed +{stats.status('refreshed') - refreshed0}, reuse_detected "
          f"+{stats.status('reuse_detected') - reused0}")

    # The expired access token of the other pair, without a refresh cookie: expired.
    expect_refusal(site, "expired access cookie, no refresh cookie", "expired",
                   cookies={"access": lone.access_token})
    if new_access is None or new_refresh is None:
        check("section 4: the checks after the rotation (need one new pair)", False)
        return

    # The client's next request carries the new cookies: a plain ok, nothing rotated.
    reply = site.get("/s4/next", cookies={"access": new_access, "refresh": new_refresh})
    check("section 4: the new cookies: 200 as dave, no Set-Cookie",
          reply.status == 200 and backend_subjects(reply) == ["dave"]
          and reply.all("Set-Cookie") == [] and reply.header("X-Tokend-Status") == "ok",
          reply.summary())
    reply = site.get("/s4/bearer", bearer=new_access)
    check("section 4: the new access token as Bearer: 200",
          reply.status == 200 and backend_subjects(reply) == ["dave"], reply.summary())

    # After the dedup window, and the new pair used (above, as Bearer), the old refresh token
    # again: token theft. The family is revoked. (The window counts milliseconds from the
    # rotation, which ended before `ended`.)
    wait_until(ended + DEDUP_WINDOW + 0.05)
    before = w.backend.count()
    expect_refusal(site, "section 4: old refresh cookie after the dedup window",
                   "reuse_detected", cookies={"access": access, "refresh": refresh})
    new_exp = int(decode_claims(new_access.split(".")[1])["exp"])
    expect_refusal(site, "section 4: the new access cookie after reuse (family revoked)",
                   "revoked", cookies={"access": new_access})
    expect_refusal(site, "section 4: the new cookies after reuse (family revoked)",
                   "revoked", cookies={"access": new_access, "refresh": new_refresh})
    check("section 4: the revocation checks ran before the new access token expired",
          time.time() < new_exp, f"now {time.time():.2f}, exp {new_exp}")
    check("section 4: none of the refused requests reached the backend",
          w.backend.count() == before)
    stats = w.client.stats()
    check("section 4: tokend counted one reuse_detected",
          stats.status("reuse_detected") - reused0 == 1)


def direct(w: World) -> None:
    """tokend's HTTP socket without nginx."""
    sock = w.tokend.http_socket
    login = w.client.issue("frank", fingerprint=w.fp)
    pair = w.client.issue("grace", "pair", fingerprint=w.fp)
    token = login.token
    assert token is not None and pair.refresh_token is not None

    reply = tokend_direct(sock, "GET", "/auth", {"Authorization": f"Bearer {token}",
                                                  "User-Agent": UA}, secrets=[token, UA])
    check("direct /auth: 204 with status, subject, session, expiry",
          reply.status == 204 and reply.header("X-Tokend-Status") == "ok"
          and reply.header("X-Tokend-Subject") == "frank"
          and reply.header("X-Tokend-Session") == login.session_id
          and (reply.header("X-Tokend-Expires-At") or "").isdigit(), reply.summary())

    def introspect(fields: dict[str, str]) -> Reply:
        body = urllib.parse.urlencode(fields).encode()
        return tokend_direct(sock, "POST", "/introspect",
                             {"Content-Type": "application/x-www-form-urlencoded"}, body,
                             secrets=list(fields.values()))

    reply = introspect({"token": token, "token_type_hint": "access_token",
                        "fingerprint": UA})
    doc = reply.json() if reply.status == 200 else {}
    allowed = {"active", "sub", "sid", "exp", "iat", "iss", "aud", "token_type", "tokend_mode"}
    check("direct /introspect: 200 JSON, no-store",
          reply.status == 200 and (reply.header("Content-Type") or "").startswith(
              "application/json") and reply.header("Cache-Control") == "no-store",
          reply.summary())
    check("direct /introspect: active true with the documented members",
          doc.get("active") is True and doc.get("sub") == "frank"
          and doc.get("sid") == login.session_id and isinstance(doc.get("exp"), int)
          and isinstance(doc.get("iat"), int) and doc.get("iss") == "tokend"
          and doc.get("token_type") == "Bearer" and doc.get("tokend_mode") == "session"
          and set(doc) <= allowed, str(doc))
    for name, fields in (("without its fingerprint", {"token": token}),
                         ("garbage", {"token": "not-a-jwt"}),
                         ("a refresh token", {"token": pair.refresh_token,
                                              "fingerprint": UA})):
        reply = introspect(fields)
        check(f"direct /introspect {name}: exactly {{\"active\":false}}",
              reply.status == 200 and reply.json() == {"active": False}, reply.summary())
    reply = tokend_direct(sock, "POST", "/introspect",
                          {"Content-Type": "application/x-www-form-urlencoded"}, b"x=1")
    check("direct /introspect without token: 400 invalid_request",
          reply.status == 400 and reply.json() == {"error": "invalid_request"}, reply.summary())

    reply = tokend_direct(sock, "GET", "/.well-known/jwks.json")
    etag = reply.header("ETag")
    cache = reply.header("Cache-Control") or ""
    max_age = cache.rpartition("max-age=")[2]
    check("direct JWKS: 200, a key set, ETag, Cache-Control public max-age <= 300",
          reply.status == 200 and isinstance(reply.json().get("keys"), list) and bool(etag)
          and cache.startswith("public") and max_age.isdigit() and int(max_age) <= 300,
          reply.summary())
    reply = tokend_direct(sock, "GET", "/.well-known/jwks.json", {"If-None-Match": etag or "x"})
    check("direct JWKS with If-None-Match: 304, no body",
          reply.status == 304 and reply.body == b"", reply.summary())
    reply = tokend_direct(sock, "HEAD", "/.well-known/jwks.json")
    check("direct JWKS HEAD: 200 with the ETag", reply.status == 200 and
          reply.header("ETag") == etag, reply.summary())

    reply = tokend_direct(sock, "GET", "/healthz")
    check("direct /healthz: 200 ok", reply.status == 200 and reply.body.strip() == b"ok",
          reply.summary())


def no_echo() -> None:
    leaks = [(r.status, s[:24]) for r in replies for s in r.sent_secrets
             if s and s.encode("latin-1") in r.text().encode("latin-1", "replace")]
    check(f"none of {len(replies)} responses contains a token or fingerprint it was sent",
          not leaks, str(leaks[:5]))


def tokend_down(w: World) -> None:
    login = w.client.issue("heidi", fingerprint=w.fp)
    assert login.token is not None
    reply = w.site.get("/down", bearer=login.token)
    check("before stopping tokend: 200", reply.status == 200, reply.summary())
    w.client.close()
    code = w.tokend.stop()
    check("tokend stopped by SIGTERM", code == 0, f"exit status {code}")
    before = w.backend.count()
    reply = w.site.get("/down", bearer=login.token)
    check("tokend stopped: nginx answers 500 or 503",
          reply.status in (500, 503), reply.summary())
    check("tokend stopped: the shipped site says 503 with Retry-After",
          reply.status == 503 and reply.header("Retry-After") == "1", reply.summary())
    check("tokend stopped: the backend is not reached", w.backend.count() == before)


def main() -> int:
    nginx = harness.nginx_binary()
    if nginx is None:
        if os.environ.get("TOKEND_NGINX_OPTIONAL") == "1":
            print("SKIP tools/nginx/e2e-test.py: nginx is not installed "
                  "(TOKEND_NGINX_OPTIONAL=1; apt-get install nginx to run it)")
            return 0
        print("FAIL nginx is not installed (apt-get install nginx), and TOKEND_NGINX_OPTIONAL "
              "is not 1")
        return 1
    try:
        tokend_bin = harness.binary("TOKEND_BIN", REPO / ".build" / "debug" / "tokend")
    except FileNotFoundError as missing:
        print(f"FAIL tools/nginx/e2e-test.py: {missing}")
        return 1
    directory = tempfile.mkdtemp(prefix="tokend-nginx-e2e-", dir="/tmp")
    os.chmod(directory, 0o700)
    tokend: harness.Tokend | None = None
    server: harness.Nginx | None = None
    backend: Backend | None = None
    world: World | None = None
    try:
        tokend = harness.Tokend(tokend_bin, directory, [
            "--http-token-cookie", "access", "--http-refresh-cookie", "refresh",
            "--http-fingerprint-headers", ",".join(FINGERPRINT_HEADERS), "--http-claims-header",
            "--access-ttl", f"{ACCESS_TTL}s", "--dedup-window", f"{DEDUP_WINDOW}s"])
        backend = Backend()
        for attempt in range(3):  # the free port may be taken in between: try another
            port = harness.free_port()
            site = harness.render_site(tokend.http_socket, f"127.0.0.1:{port}",
                                       f"127.0.0.1:{backend.port}")
            try:
                server = harness.Nginx(nginx, os.path.join(directory, f"nginx{attempt}"), site,
                                       port)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        assert server is not None
        print(f"tokend {tokend_bin}, nginx {nginx} on 127.0.0.1:{server.port}, backend on "
              f"127.0.0.1:{backend.port}", flush=True)
        world = World(tokend, server, backend)
        scenario("through nginx", lambda: through_nginx(world))
        scenario("section 4", lambda: section_4(world))
        scenario("direct", lambda: direct(world))
        no_echo()
        scenario("tokend down", lambda: tokend_down(world))
    except Exception:  # noqa: BLE001 - setup failed
        check("setup", False, traceback.format_exc().strip())
    finally:
        if world is not None:
            world.client.close()
        if failures:
            for what, proc in (("tokend", tokend), ("nginx", server)):
                if proc is not None:
                    print(f"--- {what} log (tail) ---\n{proc.log()}")
        if server is not None:
            server.stop()
        if tokend is not None:
            tokend.stop()
        if backend is not None:
            backend.stop()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{'FAIL' if failures else 'PASS'} tools/nginx/e2e-test.py: "
          f"{len(failures)} failed" + (f" ({', '.join(failures)})" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
