"""The cost banner on every response while a PAYG license is in force.

A pure ASGI middleware: it adds ``X-Annotrain-Cost-Banner`` to the start of every
HTTP response under ``/api/`` (errors and 401s included; ``/health`` and the docs
too once the state is cached, since they must not open the store) from the cached grant
(:class:`~annotrain.services.licenses.GrantCache`), reading the store only when
the cache is stale, and then in a worker thread, off the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.licenses import Grant
from annotrain.services.licenses import GrantCache

COST_BANNER_HEADER = "X-Annotrain-Cost-Banner"
_HEADER = COST_BANNER_HEADER.lower().encode("ascii")
_LOG = logging.getLogger(__name__)


class CostBannerHeader:
    """Adds the cost banner header to every HTTP response while a PAYG license is in force.

    Args:
        app: The app it wraps.
        grants: The cached grant.
    """

    def __init__(self, app: ASGIApp, *, grants: GrantCache) -> None:
        self.app = app
        self._grants = grants
        self._last: Grant | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; add the header to its response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not str(scope.get("path", "")).startswith("/api/") and not self._grants.fresh():
            # /health, /docs: the banner when it is known, but never a store opened for it.
            await self.app(scope, receive, send)
            return
        banner = (await self._grant()).cost_banner
        if banner is None:
            await self.app(scope, receive, send)
            return
        value = banner.encode("ascii")

        async def send_with_banner(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (_HEADER, value)]
                message = _with_headers(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_banner)

    async def _grant(self) -> Grant:
        if self._grants.fresh():
            return self._grants.get()
        try:
            grant = await anyio.to_thread.run_sync(self._grants.get)
        except AnnotrainError as exc:
            # The store is busy: the request itself will say so; the banner keeps the
            # last state known rather than vanishing or failing every response.
            _LOG.warning("cost banner: the license state could not be read: %s", exc)
            return self._last if self._last is not None else Grant()
        self._last = grant
        return grant


def _with_headers(message: Message, headers: list[Any]) -> MutableMapping[str, Any]:
    changed = dict(message)
    changed["headers"] = headers
    return changed
