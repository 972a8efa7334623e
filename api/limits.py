"""The request body limit, enforced before any handler reads the body."""

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _message(max_bytes: int) -> str:
    return f"the request body is larger than the limit of {max_bytes} bytes"


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader passes it on as the 413 it is."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _message(max_bytes))


class BodyLimit:
    """413 for a body over `max_bytes` (`larger_max_bytes` for the uploads in `larger`, as
    (method, path)): at once when Content-Length says so, else as soon as the streamed body
    passes the limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        larger: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
        larger_max_bytes: int = 0,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.larger = frozenset(larger)
        self.larger_max_bytes = larger_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.default_max_bytes
        if (scope["method"], scope["path"].rstrip("/")) in self.larger:
            limit = max(limit, self.larger_max_bytes)
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await self._refuse(send, limit)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"detail": _message(limit)}).encode()
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
