"""Who may drive the page: whoever holds the token printed with its URL, from this machine only.

The token arrives once in the URL (``?token=``), is swapped for an HttpOnly, SameSite=Strict cookie
and removed from the address bar. Every request without the token or cookie is refused, and every
state change must also carry the page's CSRF token in a header (a form on another site cannot set
one) from this origin. The Host header must name the loopback address (no DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlparse

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD"}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
CSRF_HEADER = "x-csrf-token"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; script-src 'self'; "
                                 b"style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
REFUSED = """<!doctype html><meta charset="utf-8"><title>NeuroCAAS</title>
<body style="font-family:sans-serif;margin:3em"><h1>This page needs its link</h1>
<p>{reason} Open the link that <code>neurocaas web</code> printed in its terminal
(it ends in <code>?token=…</code>).</p></body>"""


class Secrets:
    """The page's token and the CSRF token derived from it."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.csrf = hmac.new(self.token.encode(), b"csrf", hashlib.sha256).hexdigest()
        self.cookie = "neurocaas_web_" + hashlib.sha256(self.token.encode()).hexdigest()[:10]

    def valid(self, candidate: str | None) -> bool:
        return bool(candidate) and secrets.compare_digest(candidate.encode(), self.token.encode())  # type: ignore[union-attr]


class Guard:
    """ASGI middleware enforcing the token, the CSRF header, a loopback Host and security headers."""

    def __init__(self, app: ASGIApp, keys: Secrets) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        refusal = self._check(scope)
        await (refusal or self.app)(scope, receive, send_secured)

    def _check(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        host = urlparse(f"//{headers.get('host', '')}").hostname
        if host not in LOCAL_HOSTS:
            return HTMLResponse(REFUSED.format(reason="This page answers only on 127.0.0.1."), 403)
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        cookies = SimpleCookie()
        cookies.load(headers.get("cookie", ""))
        from_cookie = cookies[self.keys.cookie].value if self.keys.cookie in cookies else None
        if "token" in query and scope["method"] in SAFE_METHODS:
            if not self.keys.valid(query["token"]):
                return HTMLResponse(REFUSED.format(reason="The token in this link is wrong."), 403)
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(self.keys.cookie, self.keys.token, httponly=True, samesite="strict", path="/")
            return response
        if not self.keys.valid(from_cookie):
            return HTMLResponse(REFUSED.format(reason="This browser has not been given the page's token."), 403)
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin and urlparse(origin).hostname not in LOCAL_HOSTS:
                return _json_refusal("This request comes from another site and was refused.")
            if not secrets.compare_digest(headers.get(CSRF_HEADER, "").encode(), self.keys.csrf.encode()):
                return _json_refusal("This request lacks the page's CSRF token; reload the page and try again.")
        return None


def _json_refusal(message: str) -> Response:
    return JSONResponse({"error": message}, 403)
