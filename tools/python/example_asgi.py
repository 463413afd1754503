"""ASGI middleware that lets a request in only with a bearer token tokend accepts: pure ASGI, so it
wraps a Starlette or FastAPI app (``app.add_middleware(TokendAuth, client=...)``) or any other.

    uvicorn example_asgi:app        # with TOKEND_SOCKET set; uvicorn is not needed otherwise

Whose fault decides the answer, as in example_wsgi.py: a token tokend refused gets 401 with
``WWW-Authenticate: Bearer error="invalid_token"``; a tokend that could not answer (its Redis
down: ``store_unavailable``; no connection; timeout) gets 503 with ``Retry-After``, never 401,
so that an outage does not log everyone out. The accepted login is handed to the app as
``scope["state"]["login"]`` (Starlette's ``request.state.login``).
"""

from __future__ import annotations

import os
from typing import Any, Awaitable, Callable, MutableMapping

from tokend_client import ServiceUnavailable, TokenRefused
from tokend_client.aio import Client

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TokendAuth:
    """Checks the bearer token of every HTTP request with tokend before ``app`` sees it."""

    def __init__(self, app: ASGIApp, client: Client, *, retry_after: int = 1) -> None:
        self.app = app
        self.client = client
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        if token is None:
            await respond(send, 401, b"missing bearer token\n",
                          [(b"www-authenticate", b'Bearer realm="example"')])
            return
        user_agent = headers.get(b"user-agent", b"").decode("latin-1")
        try:
            login = await self.client.verify(token, fingerprint=user_agent)
        except TokenRefused as refusal:             # the token is no good: log in again
            await unauthorized(send, refusal.name)
            return
        except ServiceUnavailable as failure:       # tokend could not answer: try again later
            await respond(send, 503, f"authentication unavailable ({failure.name}), "
                                     "try again\n".encode(),
                          [(b"retry-after", str(self.retry_after).encode())])
            return
        except ValueError:                          # a token no protocol message can carry
            await unauthorized(send, "malformed_token")
            return
        scope = dict(scope)
        scope["state"] = {**scope.get("state", {}), "login": login}
        await self.app(scope, receive, send)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is none."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def unauthorized(send: Send, reason: str) -> None:
    challenge = f'Bearer error="invalid_token", error_description="{reason}"'
    await respond(send, 401, f"{reason}\n".encode(), [(b"www-authenticate", challenge.encode())])


async def respond(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """The protected app: greets the login's subject."""
    await respond(send, 200, f"hello {scope['state']['login'].subject}\n".encode())


# One client for the process: one pipelined connection per event loop.
app = TokendAuth(hello, Client(os.environ.get("TOKEND_SOCKET"), timeout=2.0))
