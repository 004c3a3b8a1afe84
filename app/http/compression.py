"""Gzip for JSON answers only; pixel data and bulk data always go out as stored.

A study's QIDO or metadata answer is repetitive text that shrinks about ten
times, which a phone on a hospital's Wi-Fi feels. Pixel data is the opposite:
compressed already, or so large that deflating it per request costs more
than the transfer saves (FIELD-NOTES: Orthanc's on-the-fly gzip takes a CT
frame from 5 ms to 56 ms). So this compresses an allow-list of media types
(application/dicom+json and application/json) and nothing else: a frame or a
multipart bulk-data answer costs the same with or without Accept-Encoding.
Starlette's GZipMiddleware works from a block-list, which would compress
multipart/related and application/octet-stream.
"""

from __future__ import annotations

import zlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMPRESSIBLE = frozenset({"application/dicom+json", "application/json"})
MINIMUM_SIZE = 1024  # below this, the gzip header and a round of deflate are not worth it
HOLD_LIMIT = 1 << 20  # an answer up to this size is compressed whole, with a Content-Length
LEVEL = 6  # zlib's default: most of level 9's ratio at a fraction of its CPU


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value admits gzip (RFC 9110 12.5.3: ``q=0`` refuses)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


class JsonGzipMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not accepts_gzip(
            Headers(scope=scope).get("accept-encoding", "")
        ):
            await self.app(scope, receive, send)
            return
        await _GzipResponder(send).run(self.app, scope, receive)


class _GzipResponder:
    """Holds the response start until the first body part shows whether to compress."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.mode = "undecided"  # or "identity", "gzip"
        self.compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self.held: list[bytes] = []
        self.held_size = 0

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        await app(scope, receive, self.send_wrapped)

    async def send_wrapped(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = Headers(raw=message.get("headers", []))
            media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
            if (
                media_type not in COMPRESSIBLE
                or "content-encoding" in headers
                or message["status"] in (204, 206, 304)
            ):
                self.mode = "identity"
                await self.send(message)
                return
            MutableHeaders(raw=message.setdefault("headers", [])).add_vary_header("Accept-Encoding")
            self.start = message
            return
        if message["type"] != "http.response.body" or self.mode == "identity":
            await self._flush_start()
            await self.send(message)
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self.mode == "undecided":
            # Middleware upstream may cut even a small answer into parts: gather them, so a
            # small answer stays as it is and a whole one keeps an exact Content-Length.
            self.held.append(body)
            self.held_size += len(body)
            if more and self.held_size < HOLD_LIMIT:
                return
            body, self.held = b"".join(self.held), []
            assert self.start is not None
            headers = MutableHeaders(raw=self.start["headers"])
            if not more and len(body) < MINIMUM_SIZE:
                self.mode = "identity"
                await self._flush_start()
                await self.send({"type": "http.response.body", "body": body})
                return
            self.mode = "gzip"
            headers["Content-Encoding"] = "gzip"
            if not more:
                compressed = self.compressor.compress(body) + self.compressor.flush()
                headers["Content-Length"] = str(len(compressed))
                await self._flush_start()
                await self.send({"type": "http.response.body", "body": compressed})
                return
            del headers["Content-Length"]  # streamed: the compressed length is not known yet
            await self._flush_start()
        chunk = self.compressor.compress(body)
        if not more:
            chunk += self.compressor.flush()
        await self.send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _flush_start(self) -> None:
        if self.start is not None:
            start, self.start = self.start, None
            await self.send(start)
