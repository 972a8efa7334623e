"""The per-key rate limit: at most N requests in any 60 seconds (a moving window, so no burst of
twice the limit across a window's edge), kept in Redis so that every API process and host
counts into the same window.

A check is one Lua script on a connection of the limit's own, spoken to in Redis's protocol
directly: one command written, one integer read, checks of concurrent requests pipelined on the
one connection (Redis answers in order). Through redis-py's asyncio client (connection pool,
retry wrapper, parser) the same script cost a tenth of a submission's CPU in a burst
(docs/performance.md, stop 35). The window's clock is Redis's, so hosts whose clocks disagree
still share one window."""

import asyncio
import hashlib
import ssl
from collections import deque
from typing import Any, cast

from redis.connection import SSLConnection, parse_url

from core.stream import command

# KEYS[1]: the key's window, a list of the times of its latest requests, newest first.
# ARGV: the limit, the window in seconds. 0: counted; n > 0: refused, retry in n seconds (when
# the oldest of the latest `limit` requests leaves the window).
SCRIPT = b"""
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and tonumber(oldest) > t - window then
    return math.max(1, math.ceil(tonumber(oldest) + window - t))
end
redis.call('LPUSH', KEYS[1], string.format('%.6f', t))
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('EXPIRE', KEYS[1], math.ceil(window))
return 0
"""
SHA = hashlib.sha1(SCRIPT).hexdigest().encode()
NAME = b"optarena-ratelimit"


class ReplyError(Exception):
    """Redis answered with an error."""


class _Connection(asyncio.Protocol):
    """One connection; replies matched to requests in order. Every reply this client asks for
    is one line: an integer, a status or an error."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[int]] = deque()
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport's subclasses, but they are its kind
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes) -> "asyncio.Future[int]":
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the rate limit's Redis connection is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(data)
        return future

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n")) >= 0:
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            future = self.waiting.popleft() if self.waiting else None
            if future is None or future.done():  # its caller gave up waiting
                continue
            kind, rest = line[:1], line[1:]
            if kind == b":":
                future.set_result(int(rest))
            elif kind == b"+":
                future.set_result(0)
            else:
                future.set_exception(ReplyError(rest.decode(errors="replace")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"Redis closed the connection: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Window:
    """Counts requests per key into a moving window in Redis at `url` (redis://, rediss:// or
    unix://, with the password and database the URL names)."""

    def __init__(self, url: str, *, limit: int, seconds: float = 60, timeout: float = 5) -> None:
        # read as every other Redis client of the service reads it (redis-py's parser: the
        # scheme, the password unquoted, the database from the path or ?db=)
        self.options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self.limit = b"%d" % limit
        self.seconds = b"%g" % seconds
        self.timeout = timeout
        self._connection: _Connection | None = None
        self._lock = asyncio.Lock()

    async def hit(self, key: str) -> int:
        """Count a request for `key`: 0 if it is within the limit, else the seconds until one
        more would be (that request not counted). Raises if Redis cannot answer in time; a
        connection that was lost is opened again once."""
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.timeout):
                    connection = await self._connect()
                    call = (b"EVALSHA", SHA, b"1", key.encode(), self.limit, self.seconds)
                    try:
                        return await connection.send(command(*call))
                    except ReplyError as error:
                        if not str(error).startswith("NOSCRIPT"):
                            raise
                        # Redis does not have the script (a restart, SCRIPT FLUSH): sent whole,
                        # which also stores it for the next EVALSHA
                        return await connection.send(command(b"EVAL", SCRIPT, *call[2:]))
            except ConnectionError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _connect(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.transport is not None:
            return connection
        async with self._lock:  # concurrent checks wait for one new connection
            if self._connection is None or self._connection.transport is None:
                self._connection = await self._open()
            return self._connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        options = self.options
        if "path" in options:  # unix://
            _, connection = await loop.create_unix_connection(_Connection, options["path"])
        else:
            tls = options.get("connection_class") is SSLConnection
            _, connection = await loop.create_connection(
                _Connection,
                options.get("host", "localhost"),
                options.get("port", 6379),
                ssl=ssl.create_default_context() if tls else None,
            )
        try:
            handshake = []
            if options.get("password") is not None:
                user = [options["username"].encode()] if options.get("username") else []
                handshake.append(command(b"AUTH", *user, options["password"].encode()))
            if options.get("db"):
                handshake.append(command(b"SELECT", b"%d" % options["db"]))
            handshake.append(command(b"CLIENT", b"SETNAME", NAME))
            for reply in [connection.send(c) for c in handshake]:
                await reply
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
