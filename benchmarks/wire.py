"""A load generator's HTTP/1.1 client: one keep-alive connection that writes a request and
reads the whole response, and nothing else. The benchmarks run on the machine they measure,
so a client's own CPU is taken from the service: httpx's `AsyncClient` used 3.5 to 4.3 ms of
CPU a request in `submissions.py`, as much as a third of what the API itself used, on the
same two cores. This one does a write and a few reads a request, as wrk or oha would.

It speaks only what the benchmarks need: requests with a body of known length, responses
with a Content-Length or chunked, keep-alive. Anything else is an error, never a guess."""

import asyncio
import contextlib
from urllib.parse import urlsplit


class WireError(Exception):
    pass


class WireClient:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise WireError(f"plain http://host:port only, not {url}")
        self.host, self.port = parts.hostname, parts.port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in {"host": parts.netloc, **headers}.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """The status and the body of the response."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body:
            extra += "content-type: application/json\r\n"
        head = f"{method} {path} HTTP/1.1\r\n{self.fixed}{extra}content-length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode("latin-1") + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            content = await self._reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunks()
        else:
            raise WireError(f"a response without a length: {lines[0]}")
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, content

    async def _chunks(self) -> bytes:
        """A chunked body (no trailers: the last chunk's CRLF ends it)."""
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append((await self._reader.readexactly(size + 2))[:size])
            if size == 0:
                return b"".join(parts)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
