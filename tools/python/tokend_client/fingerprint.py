"""The fingerprint of tokend's HTTP face (docs/http.md, "The fingerprint"), built in Python.

A login that will be checked by tokend's ``/auth`` (behind nginx ``auth_request`` and the like)
must be issued with the bytes tokend will make from the request headers named by
``--http-fingerprint-headers``. :func:`http_fingerprint` makes those bytes from the headers of the
login request, so that the application can pass them to :meth:`Client.issue`::

    fingerprint = http_fingerprint(environ, ["User-Agent"])      # WSGI
    login = tokend.issue("alice", "pair", fingerprint=fingerprint)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

__all__ = ["http_fingerprint"]

_OWS = " \t"  # HTTP's optional whitespace (RFC 9110 section 5.6.3)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _wsgi_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def _values(headers: Any, name: str) -> list[str]:
    """Every line of header ``name`` (case-insensitive), in order."""
    lowered = name.lower()
    get_all = getattr(headers, "get_all", None)  # http.client / email.message / http.server
    if callable(get_all) and not isinstance(headers, Mapping):
        return [_text(v) for v in (get_all(name) or [])]
    if isinstance(headers, Mapping):
        found = [_text(v) for k, v in headers.items() if _text(k).lower() == lowered]
        if not found:  # a WSGI environ: HTTP_USER_AGENT for User-Agent
            value = headers.get(_wsgi_key(name))
            if isinstance(value, (str, bytes)):
                found = [_text(value)]
        return found
    # An iterable of (name, value) pairs: ASGI's scope["headers"], wsgiref's lists, ...
    return [_text(v) for k, v in headers if _text(k).lower() == lowered]


def http_fingerprint(headers: Mapping[str, Any] | Iterable[tuple[Any, Any]] | Any,
                     names: Sequence[str] | str) -> bytes | None:
    """The fingerprint tokend makes for a request with ``headers`` when started with
    ``--http-fingerprint-headers`` ``names`` (docs/http.md): each header's value with leading
    and trailing whitespace removed (several lines of one header joined with ``", "``), a
    missing header as the empty string, the values joined with one line feed.

    ``headers`` may be a mapping (looked up case-insensitively; a WSGI ``environ`` works too:
    ``User-Agent`` is found as ``HTTP_USER_AGENT``), an object with ``get_all`` (the headers of
    :mod:`http.client`, :mod:`http.server` and :mod:`email`), or an iterable of
    ``(name, value)`` pairs, as ``str`` or ``bytes`` (ASGI's ``scope["headers"]``). ``names`` is
    a sequence of header names or the flag's comma-separated text.

    Returns ``None`` when no header is named: tokend then sends no fingerprint. Text is turned
    into bytes as Latin-1, the way WSGI and :mod:`http` decode header bytes, so the result is
    the bytes on the wire; a value that Latin-1 cannot encode is encoded as UTF-8.

    >>> http_fingerprint({"user-agent": " curl/8.5.0 ", "X-Device-Id": "d-42"},
    ...                  "User-Agent,X-Device-Id")
    b'curl/8.5.0\\nd-42'
    """
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    if not names:
        return None
    parts = [", ".join(v.strip(_OWS) for v in _values(headers, name)) for name in names]
    text = "\n".join(parts)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")
