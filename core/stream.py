"""The live side of the metrics: one bounded Redis stream per job, and the cancel flag.

A stream entry's id is `<seq>-0`, seq being the record's number in Postgres, so the same
cursor addresses both stores. Entries are added after the Postgres commit; a reader only
trusts a run of entries that continues its cursor without a gap, and reads Postgres otherwise.
"""

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection

from core.records import Sequenced


def metrics_key(job_id: uuid.UUID) -> str:
    return f"jobs:{job_id}:metrics"


def cancel_key(job_id: uuid.UUID) -> str:
    return f"jobs:{job_id}:cancel"


def encode(data: dict[str, Any]) -> dict[str, str]:
    return {"r": json.dumps(data, separators=(",", ":"))}


def decode(fields: dict[Any, Any]) -> dict[str, Any]:
    raw = fields.get(b"r", fields.get("r"))
    if raw is None:
        raise ValueError("stream entry without a record")
    data: dict[str, Any] = json.loads(raw)
    return data


def _seq_of(entry_id: Any) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-", 1)[0])


def gapless(entries: Sequence[tuple[Any, Any]], *, cursor: int) -> list[Sequenced]:
    """The stream entries that continue `cursor` without a gap, decoded."""
    records: list[Sequenced] = []
    expected = cursor + 1
    for entry_id, fields in entries:
        seq = _seq_of(entry_id)
        if seq != expected:
            break
        records.append(Sequenced(seq=seq, data=decode(fields or {})))
        expected += 1
    return records


# Adds the entries to the stream KEYS[1] (trimmed to about ARGV[1] entries), then sets its
# expiry to ARGV[2] seconds: one command however many entries. ARGV[3] holds the entries' ids
# and ARGV[4] their records, each joined by newlines (compact JSON has none of its own): two
# arguments where one each cost the client most of the call to pack. An entry the stream is
# already past is skipped (pcall) and counted; the count is the answer.
APPEND = """
local ids, texts = ARGV[3], ARGV[4]
local late = 0
local i, j = 1, 1
while i <= #ids do
    local id_end = string.find(ids, '\\n', i, true) or (#ids + 1)
    local text_end = string.find(texts, '\\n', j, true) or (#texts + 1)
    local added = redis.pcall(
        'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.sub(ids, i, id_end - 1),
        'r', string.sub(texts, j, text_end - 1))
    if type(added) == 'table' and added.err then late = late + 1 end
    i, j = id_end + 1, text_end + 1
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return late
"""


APPEND_SHA = hashlib.sha1(APPEND.encode()).hexdigest().encode()


def command(*parts: bytes) -> bytes:
    """One command in Redis's protocol (RESP: an array of bulk strings), ready to send; for
    the clients that speak it directly (the worker's `Appender`, the API's rate limit)."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class Appender:
    """The worker's appends on a connection of their own, as one packed command.

    An epoch's append is the one Redis call training makes, once an epoch a run; through
    the client it cost more of the process's CPU than the Postgres write before it (the
    pool's checkout and release, their metrics, packing eight arguments). Here it is one
    `send` and one reply on a connection made with the client's own settings (address,
    password, database, TLS, timeouts), guarded by a lock, made anew in a forked child and
    after any error. A connection lost mid-call is tried once more on a new one; a script
    the server no longer has (a restart, SCRIPT FLUSH) is sent whole."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool = client.connection_pool
        self._lock = threading.Lock()
        self._connection: AbstractConnection | None = None
        self._pid = os.getpid()

    def call(self, key: bytes, *args: bytes) -> Any:
        """EVALSHA of APPEND (EVAL when the server lacks it) with KEYS[1] `key`."""
        if self._pid != os.getpid():
            # A forked child: its parent's lock and socket are not its own (closing the
            # socket here would shut it for the parent too)
            self._lock, self._connection, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            try:
                return self._call_once(key, args)
            except (redis.ConnectionError, redis.TimeoutError):
                self._drop()
            except BaseException:
                self._drop()  # a reply may be left unread: never reuse the connection
                raise
            try:
                return self._call_once(key, args)
            except BaseException:
                self._drop()
                raise

    def _call_once(self, key: bytes, args: tuple[bytes, ...]) -> Any:
        if self._connection is None:
            self._connection = self.pool.connection_class(**self.pool.connection_kwargs)
        connection: Any = self._connection  # (redis-py's connection methods are untyped)
        try:
            connection.send_packed_command([command(b"EVALSHA", APPEND_SHA, b"1", key, *args)])
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            connection.send_packed_command([command(b"EVAL", APPEND.encode(), b"1", key, *args)])
            return connection.read_response()

    def _drop(self) -> None:
        connection: Any = self._connection
        self._connection = None
        if connection is not None:
            connection.disconnect()


class MetricsStream:
    """Appends and reads the per-job stream; every call is one Redis round trip."""

    def __init__(self, client: redis.Redis, *, maxlen: int, ttl_seconds: int) -> None:
        self.client = client
        self.maxlen = maxlen
        self.ttl_seconds = ttl_seconds
        self._appender = Appender(client)

    def append(self, job_id: uuid.UUID, records: Sequence[Sequenced], *, live_ttl: int) -> bool:
        """Add records under their sequence numbers in one round trip; False if one was late
        (the stream is already past it: another run of the job added a later number first,
        and readers will see the gap and read that record from Postgres)."""
        if not records:
            return True
        ids = "\n".join(f"{record.seq}-0" for record in records)
        texts = "\n".join(
            record.text if record.text is not None else encode(record.data)["r"]
            for record in records
        )
        late = self._appender.call(
            metrics_key(job_id).encode(),
            b"%d" % self.maxlen,
            b"%d" % live_ttl,
            ids.encode(),
            texts.encode(),
        )
        return int(late) == 0

    def read_after(self, job_id: uuid.UUID, *, cursor: int, limit: int) -> list[Sequenced]:
        """The entries that continue `cursor` without a gap (possibly none)."""
        entries = self.client.xrange(metrics_key(job_id), min=f"({cursor}-0", count=limit)
        return gapless(entries or [], cursor=cursor)

    def expire_after_job(self, job_id: uuid.UUID) -> None:
        self.client.expire(metrics_key(job_id), self.ttl_seconds)
        self.client.expire(cancel_key(job_id), self.ttl_seconds)

    def request_cancel(self, job_id: uuid.UUID, *, ttl_seconds: int) -> None:
        self.client.set(cancel_key(job_id), b"1", ex=ttl_seconds)

    def cancel_requested(self, job_id: uuid.UUID) -> bool:
        return bool(self.client.exists(cancel_key(job_id)))


def make_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
