"""A minimal HTTP/1.1 client on trio sockets: keep-alive, Content-Length or chunked bodies.

An httpx client spends 5-10 ms of CPU per request on a small machine and would measure
itself; this one parses the status line, the headers and a Content-Length body (or a
chunked one: a streamed answer, as the LangGraph API's ``/runs/wait`` sends), and nothing
else. One :class:`Connection` carries one request at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    def loads(raw: bytes) -> Any:
        return orjson.loads(raw)

except ImportError:  # pragma: no cover - orjson is a graphnursery dependency
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(raw: bytes) -> Any:
        return json.loads(raw)


class HttpError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return loads(self.body)


def split_target(url: str) -> tuple[str, int]:
    """``http://host:port`` -> (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http://host:port URL, got {url!r}")
    return parts.hostname, parts.port or 80


class Connection:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: trio.SocketStream | None = None
        self._buffer = bytearray()
        self._host_header = f"{host}:{port}"
        self.connects = 0

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1") + (body or b"")
        reused = self._stream is not None
        try:
            return await self._exchange(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, HttpError):
            await self.aclose()
            if not reused:
                raise
        # The server closed an idle keep-alive connection before reading our request:
        # nothing was received, so sending again on a fresh connection is safe.
        return await self._exchange(data)

    async def _exchange(self, data: bytes) -> Response:
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self._buffer.clear()
            self.connects += 1
        stream = self._stream
        await stream.send_all(data)
        response = await self._read_response(stream)
        if response.headers.get("connection", "").lower() == "close":
            await self.aclose()
        return response

    async def _fill(self, stream: trio.SocketStream) -> None:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise HttpError("connection closed by the server")
        self._buffer += chunk

    async def _read_response(self, stream: trio.SocketStream) -> Response:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            await self._fill(stream)
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.x status line: {lines[0]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Response(status, headers, await self._read_chunked(stream))
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            await self._fill(stream)
        body = bytes(buffer[:length])
        del buffer[:length]
        return Response(status, headers, body)

    async def _line(self, stream: trio.SocketStream) -> bytes:
        """The next CRLF-ended line of the buffer (without its CRLF)."""
        buffer = self._buffer
        while (end := buffer.find(b"\r\n")) < 0:
            await self._fill(stream)
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        return line

    async def _read_chunked(self, stream: trio.SocketStream) -> bytes:
        """A chunked body, its chunks joined (extensions and trailers read and dropped)."""
        buffer = self._buffer
        parts: list[bytes] = []
        while True:
            line = await self._line(stream)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(f"not a chunk size line: {line[:40]!r}") from None
            if size == 0:
                while await self._line(stream):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            while len(buffer) < size + 2:
                await self._fill(stream)
            if buffer[size : size + 2] != b"\r\n":
                raise HttpError("a chunk is not followed by CRLF")
            parts.append(bytes(buffer[:size]))
            del buffer[: size + 2]
