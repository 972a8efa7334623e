"""Admission lets a bounded number of requests into the handlers: the rest wait, a streamed
response gives its turn back when it starts, and a body arrives intact."""

import asyncio
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from api.admission import Admission


def http(path: str, method: str = "GET") -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": []}


def body_of(*chunks: bytes) -> Receive:
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # the client is still there
        raise AssertionError("unreachable")

    return receive


class Recorder:
    """An app whose requests each wait for their own go-ahead before answering; `inside`
    counts the requests in it, `most` the most at once."""

    def __init__(self, stream: bool = False) -> None:
        self.inside = self.most = 0
        self.go: dict[str, asyncio.Event] = {}
        self.bodies: dict[str, bytes] = {}
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies[scope["path"]] = body
        go = self.go.setdefault(scope["path"], asyncio.Event())
        try:
            if self.stream:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            await go.wait()
            if not self.stream:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})
        finally:
            self.inside -= 1


async def until(condition: Any) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def ignore(message: Message) -> None:
    return None


def test_at_most_limit_requests_are_inside_and_the_rest_follow_in_turn() -> None:
    async def check() -> None:
        app = Recorder()
        admitted = Admission(app, limit=2)
        calls = [
            asyncio.create_task(admitted(http(f"/r{i}"), body_of(b""), ignore)) for i in range(5)
        ]
        await until(lambda: app.inside == 2)
        for _ in range(100):
            await asyncio.sleep(0)
        assert app.inside == 2 and len(app.bodies) == 2  # the other three wait outside
        for i in range(5):
            await until(lambda i=i: f"/r{i}" in app.go)
            app.go[f"/r{i}"].set()
        await asyncio.gather(*calls)
        assert app.most == 2 and len(app.bodies) == 5

    asyncio.run(check())


def test_a_streamed_response_gives_its_turn_back_when_it_starts() -> None:
    async def check() -> None:
        app = Recorder(stream=True)
        admitted = Admission(app, limit=1)
        first = asyncio.create_task(admitted(http("/events"), body_of(b""), ignore))
        await until(lambda: "/events" in app.go)
        # the first still streams; the second is let in all the same
        second = asyncio.create_task(admitted(http("/other"), body_of(b""), ignore))
        await until(lambda: "/other" in app.go)
        assert app.inside == 2
        app.go["/other"].set()
        app.go["/events"].set()
        await asyncio.gather(first, second)

    asyncio.run(check())


def test_the_body_is_read_before_the_turn_and_handed_on_whole() -> None:
    async def check() -> None:
        app = Recorder()
        admitted = Admission(app, limit=1)
        call = asyncio.create_task(
            admitted(http("/jobs", "POST"), body_of(b'{"a":', b" 1", b"}"), ignore)
        )
        await until(lambda: "/jobs" in app.go)
        assert app.bodies["/jobs"] == b'{"a": 1}'
        app.go["/jobs"].set()
        await call

    asyncio.run(check())


def test_exempt_requests_never_wait_and_a_failed_request_gives_its_turn_back() -> None:
    async def check() -> None:
        app = Recorder()
        admitted = Admission(app, limit=1, exempt_paths={"/healthz"}, exempt={("POST", "/up")})
        busy = asyncio.create_task(admitted(http("/busy"), body_of(b""), ignore))
        await until(lambda: "/busy" in app.go)
        health = asyncio.create_task(admitted(http("/healthz"), body_of(b""), ignore))
        upload = asyncio.create_task(admitted(http("/up", "POST"), body_of(b"x"), ignore))
        await until(lambda: "/healthz" in app.go and "/up" in app.go)
        assert app.inside == 3
        for path in ("/healthz", "/up", "/busy"):
            app.go[path].set()
        await asyncio.gather(busy, health, upload)

        async def fails(scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError("handler failed")

        failing = Admission(fails, limit=1)
        for _ in range(3):  # each failure gives its one turn back, or the next would hang
            try:
                await asyncio.wait_for(failing(http("/x"), body_of(b""), ignore), timeout=60)
            except RuntimeError:
                pass
            else:
                raise AssertionError("the handler's error was swallowed")

    asyncio.run(check())
