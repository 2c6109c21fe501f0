"""Who may open the panel: loopback by default, a token off loopback, same-origin WebSockets only.

Rules (checked by the server on the page request and on every WebSocket handshake):

* **Token.** Binding anything but a loopback address requires a token; one is generated with
  :mod:`secrets` when none is given. When a token is set it must come with the request, as the query
  parameter ``token``, the header ``Authorization: Bearer <token>`` or ``X-Neurorack-Token``; it is
  compared in constant time.
* **Host.** On a loopback binding the ``Host`` header must name a loopback address (``127.x.x.x``,
  ``localhost``, ``[::1]``), which defeats DNS rebinding (a page on ``evil.example`` whose name
  resolves to 127.0.0.1).
* **Origin.** A WebSocket handshake carrying an ``Origin`` (every browser sends one) is accepted only
  from the panel's own origin (``scheme://Host``, the Host header the request came to, itself checked
  above) or one listed in ``allowed_origins``; anything else is refused with HTTP 403. Clients that
  send no Origin (scripts) are not browsers and rely on the token.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from neurorack.errors import NeurorackError

#: Length of a generated token, bytes of entropy (URL-safe base64, ~22 characters).
TOKEN_BYTES = 16


def is_loopback(host: str) -> bool:
    """``host`` (an address or name, IPv6 with or without brackets) is a loopback address."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> str | None:
    """The token the server will require: ``token`` as given, a new one when ``host`` is not loopback
    and none was given, None on loopback without a token.

    Raises:
        NeurorackError: an empty or too short token (< 8 characters), or one with spaces.
    """
    if token is not None:
        if len(token) < 8 or any(c.isspace() for c in token):
            raise NeurorackError("the panel token must have at least 8 characters and no spaces")
        return token
    if is_loopback(host):
        return None
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_ok(expected: str | None, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """Whether a request carries ``expected`` (always true when no token is required)."""
    if expected is None:
        return True
    offered = [query.get("token", ""), headers.get("x-neurorack-token", "")]
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        offered.append(auth[7:].strip())
    want = expected.encode()
    return any(o and secrets.compare_digest(o.encode("utf-8", "replace"), want) for o in offered)


def _host_name(host_header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8000`` → ``::1``, ``a.b:80`` → ``a.b``)."""
    h = host_header.strip()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def host_ok(bind_host: str, host_header: str | None) -> bool:
    """On a loopback binding, the request's ``Host`` must be a loopback name (anti DNS rebinding)."""
    if not is_loopback(bind_host):
        return True
    return bool(host_header) and is_loopback(_host_name(host_header or ""))


def origin_ok(origin: str | None, host_header: str | None, allowed: Iterable[str] = ()) -> bool:
    """A WebSocket ``Origin`` is the panel's own (``http(s)://`` + the request's Host) or in ``allowed``.

    No Origin at all (a non-browser client) is accepted here; the token still applies.
    """
    if origin is None:
        return True
    o = origin.strip().rstrip("/").lower()
    if o in {a.strip().rstrip("/").lower() for a in allowed}:
        return True
    if not host_header:
        return False
    parts = urlsplit(o)
    return parts.scheme in ("http", "https") and parts.netloc == host_header.strip().lower()
