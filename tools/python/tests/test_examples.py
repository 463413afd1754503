"""The web examples against the real tokend: 200 for a good token, 401 for a token tokend
refused, 503 (never 401) when tokend cannot answer, here because its Redis is down."""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
import time
import unittest
from http.cookies import SimpleCookie
from types import ModuleType
from typing import Any

from tokend_client import Client, Expired, aio

from .support import TOOLS_PYTHON, Daemon, SharedStore, run_asgi, run_wsgi


def import_example(name: str) -> ModuleType:
    sys.path.insert(0, str(TOOLS_PYTHON))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TOOLS_PYTHON))


class WebExamples:
    """Drives example_wsgi.app and example_asgi.TokendAuth against a daemon's socket."""

    def __init__(self, test: unittest.TestCase, socket_path: str) -> None:
        self.wsgi = import_example("example_wsgi")
        self.asgi = import_example("example_asgi")
        client = Client(socket_path, timeout=2.0)
        test.addCleanup(client.close)
        original = self.wsgi.TOKEND
        setattr(self.wsgi, "TOKEND", client)
        test.addCleanup(setattr, self.wsgi, "TOKEND", original)
        self.aio_client = aio.Client(socket_path, timeout=2.0)
        self.middleware = self.asgi.TokendAuth(self.asgi.hello, self.aio_client)

    def get_wsgi(self, headers: dict[str, str]) -> tuple[str, dict[str, str], str]:
        environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        return run_wsgi(self.wsgi.app, environ)

    def get_asgi(self, *requests: dict[str, str]) -> list[tuple[int, dict[str, str], str]]:
        async def run() -> list[tuple[int, dict[str, str], str]]:
            try:
                return [await run_asgi(self.middleware, headers) for headers in requests]
            finally:
                await self.aio_client.close()  # before asyncio.run ends the loop

        return asyncio.run(run())


class ExamplesTest(unittest.TestCase):
    def test_embedded_store(self) -> None:
        daemon = Daemon([])
        self.addCleanup(daemon.stop)
        web = WebExamples(self, daemon.socket_path)
        with Client(daemon.socket_path) as tokend:
            token = tokend.issue("olivia", fingerprint="UA/1").token
            ok = {"Authorization": f"Bearer {token}", "User-Agent": "UA/1"}
            other_agent = {**ok, "User-Agent": "UA/2"}
            bad_scheme = {"Authorization": f"Basic {token}"}
            huge = {"Authorization": "Bearer " + "x" * 9000}

            self.assertEqual(web.get_wsgi(ok)[::2], ("200 OK", "hello olivia\n"))
            status, headers, body = web.get_wsgi(other_agent)
            self.assertEqual((status, body), ("401 Unauthorized", "fingerprint_mismatch\n"))
            self.assertEqual(headers["WWW-Authenticate"], 'Bearer error="invalid_token", '
                                                          'error_description="fingerprint_mismatch"')
            for missing in ({}, bad_scheme, {"Authorization": "Bearer "}):
                status, headers, _ = web.get_wsgi(missing)
                self.assertEqual(status, "401 Unauthorized")
                self.assertNotIn("error=", headers["WWW-Authenticate"])  # RFC 6750 3.1
            self.assertEqual(web.get_wsgi(huge)[::2], ("401 Unauthorized", "malformed_token\n"))

            asgi = web.get_asgi(ok, other_agent, {}, huge)
            self.assertEqual([(s, b) for s, _, b in asgi],
                             [(200, "hello olivia\n"), (401, "fingerprint_mismatch\n"),
                              (401, "missing bearer token\n"), (401, "malformed_token\n")])
            self.assertIn('error="invalid_token"', asgi[1][1]["www-authenticate"])

    def test_revoked_is_401_and_redis_down_is_503(self) -> None:
        store = SharedStore()
        self.addCleanup(store.stop)
        web = WebExamples(self, store.socket_path)
        with Client(store.socket_path, timeout=5.0) as tokend:
            good = tokend.issue("peggy").token
            gone = tokend.issue("peggy").token
            tokend.revoke(gone)
        good_request = {"Authorization": f"Bearer {good}"}
        revoked_request = {"Authorization": f"Bearer {gone}"}

        # Redis up: the good token passes, the revoked one is refused.
        self.assertEqual(web.get_wsgi(good_request)[::2], ("200 OK", "hello peggy\n"))
        status, headers, body = web.get_wsgi(revoked_request)
        self.assertEqual((status, body), ("401 Unauthorized", "revoked\n"))
        self.assertIn('Bearer error="invalid_token"', headers["WWW-Authenticate"])
        asgi = web.get_asgi(good_request, revoked_request)
        self.assertEqual([(s, b) for s, _, b in asgi], [(200, "hello peggy\n"), (401, "revoked\n")])

        # Redis down: tokend answers store_unavailable. Nobody is logged out: 503, retry later.
        store.redis_down()
        for request in (good_request, revoked_request):
            status, headers, body = web.get_wsgi(request)
            self.assertEqual(status, "503 Service Unavailable", body)
            self.assertIn("store_unavailable", body)
            self.assertEqual(headers["Retry-After"], "1")
            self.assertNotIn("WWW-Authenticate", headers)
        for status_code, headers, body in web.get_asgi(good_request, revoked_request):
            self.assertEqual(status_code, 503, body)
            self.assertIn("store_unavailable", body)
            self.assertEqual(headers["retry-after"], "1")

        # And with tokend gone too: still 503.
        assert store.daemon is not None
        store.daemon.stop()
        status, headers, body = web.get_wsgi(good_request)
        self.assertEqual(status, "503 Service Unavailable", body)
        self.assertEqual(web.get_asgi(good_request)[0][0], 503)


if __name__ == "__main__":
    unittest.main()


class ReadmeHandlersTest(unittest.TestCase):
    """The handlers of README.md's Python section, and tools/python/README.md's verify-or-refresh
    handler, run as written."""

    def blocks(self) -> list[str]:
        readme = (TOOLS_PYTHON.parents[1] / "README.md").read_text(encoding="utf-8")
        section = readme[readme.index("### From Python"):]
        section = section[:section.index("\n## ")]
        return re.findall(r"```python\n(.*?)```", section, re.S)

    def test_readme_handlers(self) -> None:
        wsgi_code, asgi_code, _ = self.blocks()
        store = SharedStore()
        self.addCleanup(store.stop)
        with Client(store.socket_path) as tokend:
            good = tokend.issue("sam", fingerprint="UA").token
            gone = tokend.issue("sam").token
            tokend.revoke(gone)

        async def your_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = f"hello {scope['state']['login'].subject}\n".encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        wsgi: dict[str, Any] = {}
        exec(wsgi_code.replace("/run/tokend/tokend.sock", store.socket_path), wsgi)
        self.addCleanup(wsgi["tokend"].close)
        asgi: dict[str, Any] = {"your_app": your_app}
        exec(asgi_code.replace("/run/tokend/tokend.sock", store.socket_path), asgi)

        requests = [{"Authorization": f"Bearer {good}", "User-Agent": "UA"},
                    {"Authorization": f"Bearer {gone}"}, {}]

        def wsgi_statuses() -> list[str]:
            return [run_wsgi(wsgi["app"], {"HTTP_" + k.upper().replace("-", "_"): v
                                           for k, v in r.items()})[0][:3] for r in requests]

        def asgi_statuses() -> list[int]:
            async def run() -> list[int]:
                try:
                    return [(await run_asgi(asgi["app"], r))[0] for r in requests]
                finally:
                    await asgi["app"].client.close()
            return asyncio.run(run())

        self.assertEqual(wsgi_statuses(), ["200", "401", "401"])
        self.assertEqual(asgi_statuses(), [200, 401, 401])
        store.redis_down()
        self.assertEqual(wsgi_statuses(), ["503", "503", "401"])
        self.assertEqual(asgi_statuses(), [503, 503, 401])

    def test_readme_verify_or_refresh_handlers(self) -> None:
        top_level = self.blocks()[2]
        ours = re.findall(r"```python\n(.*?)```",
                          (TOOLS_PYTHON / "README.md").read_text(encoding="utf-8"), re.S)
        handlers = [top_level] + [code for code in ours if "SimpleCookie" in code]
        self.assertEqual(len(handlers), 2)
        daemon = Daemon([])  # --dedup-window 1s
        self.addCleanup(daemon.stop)
        tokend = Client(daemon.socket_path)
        self.addCleanup(tokend.close)
        apps = []
        for code in handlers:
            scope: dict[str, Any] = {}
            exec(code.replace("/run/tokend/tokend.sock", daemon.socket_path), scope)
            self.addCleanup(scope["tokend"].close)
            apps.append(scope["app"])

        def get(app: Any, cookies: dict[str, str]) -> tuple[str, dict[str, str]]:
            """The status, and the cookies the response sets."""
            seen: dict[str, Any] = {}

            def start_response(status: str, headers: list[tuple[str, str]]) -> None:
                seen["status"], seen["headers"] = status, headers

            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_USER_AGENT": "UA",
                       "HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in cookies.items())}
            b"".join(app(environ, start_response))
            jar = SimpleCookie()
            for name, value in seen["headers"]:
                if name == "Set-Cookie":
                    jar.load(value)
            return str(seen["status"])[:3], {k: morsel.value for k, morsel in jar.items()}

        pairs = [tokend.issue("uma", "pair", fingerprint="UA", ttl=2) for _ in apps]
        cookies = [{"access": p.access_token or "", "refresh": p.refresh_token or ""}
                   for p in pairs]
        other = tokend.issue("vic", "pair", fingerprint="UA", ttl=1)
        for app, jar in zip(apps, cookies):
            self.assertEqual(get(app, jar), ("200", {}))  # valid: nothing set
            self.assertEqual(get(app, {"access": jar["access"]}), ("200", {}))
            self.assertEqual(get(app, {})[0], "401")

        wait_until = max(p.expires_at for p in pairs) + 0.02
        time.sleep(max(0.0, wait_until - time.time()))
        new_cookies = []
        for app, jar, pair in zip(apps, cookies, pairs):
            status, new = get(app, jar)
            rotated_by = time.time()  # the last rotation was made before this
            if status == "401":  # a tokend from before verify-or-refresh?
                try:
                    tokend.verify(jar["access"], "UA", refresh_token=jar["refresh"])
                except Expired:
                    self.skipTest("the daemon does not rotate in verify (verify-or-refresh)")
            self.assertEqual(status, "200")
            self.assertEqual(set(new), {"access", "refresh"})
            self.assertNotIn(new["access"], jar.values())
            self.assertNotIn(new["refresh"], jar.values())
            self.assertEqual(get(app, jar), ("200", new))  # within the window: the same pair
            self.assertEqual(get(app, new), ("200", {}))  # the new pair (now used): nothing set
            self.assertEqual(tokend.verify(new["access"], "UA").session_id, pair.session_id)
            # Another pair's refresh token, and an expired access token without one: 401.
            self.assertEqual(get(app, {"access": jar["access"],
                                       "refresh": other.refresh_token or ""})[0], "401")
            self.assertEqual(get(app, {"access": jar["access"]})[0], "401")
            new_cookies.append(new)

        # Past the 1 s window (milliseconds from each rotation). The new pairs were used, so the
        # old refresh tokens are no lost-response retries (which would get the same pair again)
        # but reuse.
        time.sleep(max(0.0, rotated_by + 1.05 - time.time()))
        for app, old, new in zip(apps, cookies, new_cookies):
            self.assertEqual(get(app, old)[0], "401")  # reuse_detected: the family is revoked
            self.assertEqual(get(app, new)[0], "401")  # revoked
