"""HEAD on every GET route (RFC 9110 9.3.2): the GET's status and headers, without the body.

FastAPI registers a GET route for GET alone, so a client that asks HEAD
first (a proxy, a viewer checking a URL, a download manager) got 405. Here a
HEAD runs as the same GET (the same authorization, the same audit, the same
Content-Length and Content-Type) and the body is dropped on the way out.

A streamed body is not produced at all: once the headers are out, the first
body chunk ends the response and stops the GET's stream (its iterator is
closed where it stands). A HEAD on a whole study used to read every blob of
the study, to throw the bytes away.
"""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyNotWanted(Exception):
    """Raised out of ``send`` to stop a streamed GET that answers a HEAD."""


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not ended:
                ended = True
                await send({"type": "http.response.body", "body": b""})
                if message.get("more_body"):
                    raise _BodyNotWanted

        with contextlib.suppress(_BodyNotWanted):
            await self.app({**scope, "method": "GET"}, receive, headers_only)
