"""The rate limit's window against a real redis-server of the test's own (a password, a
database other than 0), on both event loops the API runs on (uvloop serves, asyncio under the
test client)."""

import asyncio
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import uvloop

from api.auth import RateLimit
from api.ratelimit import NAME, Window
from core.keys import Principal
from tests.conftest import wait_for
from tests.e2e.conftest import free_port


@pytest.fixture(scope="module")
def server(private_redis: redis.Redis) -> redis.Redis:
    return private_redis


def url(server: redis.Redis) -> str:
    return f"redis://:pw@127.0.0.1:{server.connection_pool.connection_kwargs['port']}/3"


Run = Callable[[Callable[[], Awaitable[Any]]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a coroutine function on the event loop the test is parametrized with."""
    return lambda main: (uvloop.run if request.param == "uvloop" else asyncio.run)(main())


def test_counts_each_key_in_one_window_that_every_process_shares(
    server: redis.Redis, run: Run
) -> None:
    key = f"optarena:rate:{uuid.uuid4()}"

    async def main() -> tuple[list[int], int, int]:
        one, other = Window(url(server), limit=3), Window(url(server), limit=3)
        try:
            hits = [await one.hit(key) for _ in range(3)]
            hits.append(await other.hit(key))  # another API process: the same window
            hits.append(await one.hit(key))
            return hits, await other.hit(f"{key}-other"), await one.hit(f"{key}-other")
        finally:
            one.close()
            other.close()

    hits, other_key, other_key_again = run(main)
    assert hits[:3] == [0, 0, 0]
    assert all(1 <= retry <= 60 for retry in hits[3:]), hits  # refused: seconds to wait
    assert (other_key, other_key_again) == (0, 0)  # each key its own window
    assert server.llen(key) == 3  # in the URL's database; a refused request is not counted
    assert 0 < server.ttl(key) <= 60


def test_concurrent_checks_share_one_connection_and_each_gets_its_own_answer(
    server: redis.Redis, run: Run
) -> None:
    keys = [f"optarena:rate:{uuid.uuid4()}" for _ in range(20)]

    async def main() -> list[int]:
        window = Window(url(server), limit=2)
        try:  # each key three times at once: two counted, one refused
            return await asyncio.gather(*(window.hit(k) for k in keys * 3))
        finally:
            window.close()

    answers = run(main)
    for i, key in enumerate(keys):
        mine = answers[i :: len(keys)]
        assert mine[:2] == [0, 0] and mine[2] > 0, (key, mine)
    wait_for(  # closed
        "the connection to close",
        lambda: all(c["name"] != NAME.decode() for c in server.client_list()),
        timeout=30,
    )


def test_a_lost_connection_or_a_flushed_script_is_recovered(server: redis.Redis, run: Run) -> None:
    key = f"optarena:rate:{uuid.uuid4()}"

    async def main() -> list[int]:
        window = Window(url(server), limit=5)
        try:
            answers = [await window.hit(key)]
            server.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
            answers.append(await window.hit(key))
            for client in server.client_list():
                if client["name"] == NAME.decode():
                    server.client_kill_filter(_id=client["id"])
            answers.append(await window.hit(key))  # a new connection, the same window
            return answers
        finally:
            window.close()

    assert run(main) == [0, 0, 0]
    assert server.llen(key) == 3


def test_an_unreachable_or_silent_redis_fails_the_check_in_time(run: Run) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        async def main() -> tuple[BaseException | int, BaseException | int]:
            nobody = Window(f"redis://127.0.0.1:{free_port()}/0", limit=1, timeout=10)
            mute = Window(f"redis://127.0.0.1:{port}/0", limit=1, timeout=0.2)
            found = []
            for window in (nobody, mute):
                try:
                    found.append(await window.hit("k"))
                except Exception as error:
                    found.append(error)
                window.close()
            return found[0], found[1]

        refused, timed_out = run(main)
    assert isinstance(refused, ConnectionError)
    assert isinstance(timed_out, TimeoutError)


def test_the_limit_is_not_applied_while_redis_is_unreachable(
    test_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = test_settings.model_copy(update={"rate_limit_per_minute": 1})
    principal = Principal(uuid.uuid4(), "alice", False)

    async def main() -> None:
        limit = RateLimit(settings, Window(f"redis://127.0.0.1:{free_port()}/0", limit=1))
        for _ in range(3):  # over the limit of 1, and let through
            await limit.check(principal)

    with caplog.at_level(logging.WARNING, logger="api.auth"):
        asyncio.run(main())
    assert caplog.text.count("rate limit not applied") == 3


def test_a_url_of_another_scheme_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="redis://"):  # redis-py's parser says which it takes
        Window("http://127.0.0.1:6379", limit=1)
