"""Request body limits: refused before a handler sees the body, as a 413 JSON error."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotrain.api.errors import PayloadTooLargeError, error_body


class BodySizeLimit:
    """Refuse bodies over a limit, by ``Content-Length`` and by the bytes that arrive.

    ``multipart/form-data`` bodies (uploads) get ``max_upload_bytes``, every other
    body ``max_json_bytes``. A declared length over the limit is refused at once;
    a body that streams past it (chunked, or a lying header) is cut off there.

    Args:
        app: The app to guard.
        max_json_bytes: The limit for every body but uploads.
        max_upload_bytes: The limit for ``multipart/form-data`` bodies.
    """

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard one HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = (
            self.max_upload_bytes
            if content_type.startswith("multipart/form-data")
            else self.max_json_bytes
        )
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server refuses a malformed length itself
            if too_big:
                await _refuse(send, limit)
                return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except PayloadTooLargeError:
            # Read outside a route (FastAPI answers it itself inside one).
            if started:
                raise
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body("payload_too_large", f"the request body is larger than {limit} bytes")
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
