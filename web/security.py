"""What every answer of the node carries for the browser's safety, and the size limit of
request bodies: one ASGI middleware, outermost in the app (`node.app.create_app`).

The pages load only the node's own scripts, styles, images and fonts, and keep no code or
style in the HTML (`<script type="application/json">` data blocks are not executed), so the
Content-Security-Policy below can refuse everything else: injected markup runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.pages import problem
from web.refusals import Refusal

DIRECTIVES = "; ".join(
    [
        "default-src 'self'",
        # The QR scanner and writer compile the vendored zxing-wasm (WebAssembly), which
        # needs 'wasm-unsafe-eval'; it allows no JavaScript eval.
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        # A QR code drawn on the device is shown as a data:image/svg+xml URL (qr.js);
        # blob: for pictures a page makes itself (a photo of a code to decode).
        "img-src 'self' data: blob:",
        # The wasm files are fetched from the node, as are the API's answers.
        "connect-src 'self'",
        # The service worker is /sw.js.
        "worker-src 'self'",
        # The camera's MediaStream is given as srcObject (no URL, not governed by the CSP);
        # blob: should a browser present it as an object URL.
        "media-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """The policy; a form may lead (by its redirect too) to the node, and to `form_targets`:
    the card top-up's form sends the payer on to Stripe's Checkout page."""
    return DIRECTIVES + "; form-action " + " ".join(["'self'", *form_targets])


# same-origin: links to other sites (a shop's page, Stripe) learn nothing of the node's
# addresses, which name members, receipts and pairing codes; the node's own pages still
# see where a visitor came from.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
BODY_TOO_LARGE = "The request is too large: at most {max_bytes} bytes."


class SecurityMiddleware:
    """Adds the security headers to every HTTP answer, `Cache-Control: no-store` to the
    answers to a signed-in caller (a session cookie or a bearer token), static files
    aside, whose route set no Cache-Control of its own; and refuses (413) a request body
    above `max_body_bytes`: from its Content-Length before reading any of it, or once a
    body sent without one (chunked) goes over while it is read."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        private_cookies: Iterable[str],
        form_targets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.private_cookies = tuple(private_cookies)
        self.form_targets = form_targets  # asked at each request: settings may change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        # The static files are the same for everyone: browsers may keep them.
        private = not scope["path"].startswith("/static/") and (
            "authorization" in request.headers
            or any(name in request.cookies for name in self.private_cookies)
        )

        policy = content_security_policy(self.form_targets())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if private:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(request, send_with_headers)
            return

        received = 0
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # The app sees the client gone (its answer is dropped below); the caller
                    # gets the 413, and the rest of the body is never read.
                    refused = True
                    await self._refuse(request, send_with_headers)
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await send_with_headers(message)

        try:
            await self.app(scope, counted_receive, send_unless_refused)
        except Exception:
            # What the app made of a body cut short: the caller already has its 413.
            if not refused:
                raise

    async def _refuse(self, request: Request, send: Send) -> None:
        refusal = Refusal(413, "body_too_large", BODY_TOO_LARGE, max_bytes=self.max_body_bytes)
        response = problem(request, refusal)
        # The server stops reading what the caller still sends, and closes.
        response.headers["Connection"] = "close"
        await response(request.scope, _nothing_more, send)


async def _nothing_more() -> Message:
    return {"type": "http.disconnect"}
