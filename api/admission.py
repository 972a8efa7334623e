"""How many requests a process handles at once.

The endpoints are synchronous: each request takes a thread of the pool for its endpoint and
another turn for its commit (and one more to look its key up, when the cache lacks it), and
holds one database connection from its first query to that commit. With more requests in
flight than connections, the ones holding connections can wait for a thread while every
thread waits for a connection: the one owner's submissions that queue on its lock in
Postgres, 25 at a time, stalled a process until the pool's 30 s timeout failed them (500s).
`Admission` lets at most `limit` requests into the handlers, fewer than the pool has
connections and the pool has threads, so an admitted request always gets both; the others
wait their turn on the event loop, a coroutine each, holding nothing.

A request is let in once its body has arrived (a slow client sends it without holding a
turn) and gives its turn back when its response starts: a streamed answer (an event stream,
a download) streams without one. Health checks and scrapes never wait, and uploads, whose
bodies can be large and slow, read them as they always did, outside the count."""

import asyncio
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Admission:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        exempt_paths: Collection[str] = (),
        exempt: Collection[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt_paths = frozenset(exempt_paths)
        self.exempt = frozenset(exempt)
        self._turns: asyncio.Semaphore | None = None  # made on the server's event loop

    def _exempt(self, scope: Scope) -> bool:
        path = scope["path"].rstrip("/") or "/"
        return path in self.exempt_paths or (scope["method"], path) in self.exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        # The whole body first (its size is bounded by the body limit outside)
        arrived: list[Message] = []
        while True:
            message = await receive()
            arrived.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replayed() -> Message:
            return arrived.pop(0) if arrived else await receive()

        if self._turns is None:
            self._turns = asyncio.Semaphore(self.limit)
        turns = self._turns
        await turns.acquire()
        held = True

        async def sending(message: Message) -> None:
            nonlocal held
            if held and message["type"] == "http.response.start":
                held = False
                turns.release()
            await send(message)

        try:
            await self.app(scope, replayed, sending)
        finally:
            if held:
                turns.release()
