"""A TCP proxy on loopback that adds latency, counts what passes, and can throttle.

    with LatencyProxy("http://127.0.0.1:5000", delay=0.02) as proxy:
        ...  # point the client at proxy.url
        proxy.requests["PUT"], proxy.sent, proxy.received

Every byte the client sends reaches the server ``delay`` seconds after it reached the
proxy: each chunk is scheduled for its arrival time plus ``delay`` and the chunks are
forwarded in order, so the delay does not add up chunk after chunk. A request and its
response therefore cost about ``delay`` more than without the proxy, as on a link whose
round trip is ``delay`` longer (the server's answers are not delayed; neither is the TCP
handshake, which on loopback only ever reaches the proxy).

The client's side of each connection is read as HTTP/1.1 (heads, then bodies framed by
Content-Length or chunked encoding) to count requests by method; bytes that do not parse
as HTTP are forwarded as they are, uncounted. ``throttle(n, match)`` answers the next ``n``
requests for which ``match(method, target)`` is true with S3's ``503 SlowDown`` instead of
forwarding them: the request's body is read and dropped first (unless the client waits for
``100 Continue``), the answer is sent after ``delay`` like any other, and the connection is
then closed (``Connection: close``). Clients do not pipeline requests, so when a request's
head arrives every earlier answer on that connection has been delivered already.

Standard library only: one asyncio loop on a thread of its own, usable from synchronous
tests and benchmarks. Loopback addresses only.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit

SLOW_DOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                  b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
                  b"</Error>")
MAX_HEAD = 64 * 1024  # a request head larger than this is not parsed: the rest passes as is
READ_SIZE = 64 * 1024


def slow_down_response(method: str) -> bytes:
    head = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(SLOW_DOWN_BODY))
    return head if method == "HEAD" else head + SLOW_DOWN_BODY


class _Requests:
    """Splits the bytes a client sends into requests, incrementally.

    ``feed(data)`` returns ``(kind, payload)`` pieces in order: ``("head", (method, target,
    headers, raw))`` once a request's head is complete, ``("body", bytes)`` for the bytes of
    its body (chunked framing included), ``("end", None)`` when the request is complete, and
    ``("raw", bytes)`` for whatever follows bytes that are not HTTP.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.state = "head"  # head, body, chunk-size, chunk-data, trailer, raw
        self.remaining = 0

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if self.state == "raw":
            return [("raw", data)]
        self.buffer += data
        while self.buffer:
            if self.state == "head":
                while self.buffer[:2] == b"\r\n":  # stray line ends between requests
                    del self.buffer[:2]
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MAX_HEAD:
                        return self._give_up(out)
                    break
                raw = bytes(self.buffer[:end + 4])
                del self.buffer[:end + 4]
                parsed = self._parse_head(raw)
                if parsed is None:
                    self.buffer[:0] = raw
                    return self._give_up(out)
                out.append(("head", parsed))
                headers = parsed[2]
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.state = "chunk-size"
                else:
                    try:
                        self.remaining = int(headers.get("content-length", "0"))
                    except ValueError:
                        self.buffer[:0] = raw
                        return self._give_up(out[:-1])
                    if self.remaining > 0:
                        self.state = "body"
                    else:
                        out.append(("end", None))
            elif self.state in ("body", "chunk-data"):
                piece = bytes(self.buffer[:self.remaining])
                del self.buffer[:len(piece)]
                self.remaining -= len(piece)
                out.append(("body", piece))
                if self.remaining == 0:
                    if self.state == "body":
                        self.state = "head"
                        out.append(("end", None))
                    else:
                        self.state = "chunk-size"
            elif self.state == "chunk-size":
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    if len(self.buffer) > 1024:
                        return self._give_up(out)
                    break
                line = bytes(self.buffer[:end + 2])
                del self.buffer[:end + 2]
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.buffer[:0] = line
                    return self._give_up(out)
                out.append(("body", line))
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.remaining = "chunk-data", size + 2  # the data and its CRLF
            elif self.state == "trailer":
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    break
                line = bytes(self.buffer[:end + 2])
                del self.buffer[:end + 2]
                out.append(("body", line))
                if line == b"\r\n":
                    self.state = "head"
                    out.append(("end", None))
        return out

    def _give_up(self, out: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        self.state = "raw"
        if self.buffer:
            out.append(("raw", bytes(self.buffer)))
        self.buffer.clear()
        return out

    @staticmethod
    def _parse_head(raw: bytes) -> tuple[str, str, dict[str, str], bytes] | None:
        try:
            text = raw.decode("latin-1")
            request_line, *lines = text.split("\r\n")
            method, target, version = request_line.split(" ")
        except ValueError:
            return None
        if not version.startswith("HTTP/1.") or not method.isalpha():
            return None
        headers: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return method.upper(), target, headers, raw


def _waits_for_continue(headers: dict[str, str]) -> bool:
    return headers.get("expect", "").lower() == "100-continue"


class LatencyProxy:
    """A loopback TCP proxy in front of ``target_url`` (``http://127.0.0.1:PORT``).

    ``requests`` counts the requests forwarded, by method; ``continued`` those of them that
    asked to wait for ``100 Continue`` before sending their body (``Expect: 100-continue``:
    one more round trip each); ``throttled`` the requests answered with 503 SlowDown
    instead; ``sent`` the bytes forwarded to the server and ``received`` the bytes the
    server sent back. ``counts()`` copies them all at once.
    """

    def __init__(self, target_url: str, delay: float = 0.02) -> None:
        parts = urlsplit(target_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
            raise ValueError(f"a loopback http://host:port target is needed, not {target_url!r}")
        self.target = (parts.hostname, parts.port)
        self.delay = delay
        self.requests: Counter[str] = Counter()
        self.continued: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.sent = 0
        self.received = 0
        self.connections = 0
        self.url = ""
        self._throttle_left = 0
        self._throttle_match: Callable[[str, str], bool] = lambda method, target: False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- control, from any thread ----------------------------------------------------

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", 0))
            except BaseException as exc:  # noqa: BLE001 - handed to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="latency-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    close = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def throttle(self, count: int, match: Callable[[str, str], bool] | None = None) -> None:
        """Answer the next ``count`` requests for which ``match(method, target)`` is true
        (all requests without ``match``) with 503 SlowDown."""
        with self._lock:
            self._throttle_left = count
            self._throttle_match = match or (lambda method, target: True)

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "continued": dict(self.continued),
                    "throttled": dict(self.throttled),
                    "sent": self.sent, "received": self.received, "connections": self.connections}

    # -- on the loop ---------------------------------------------------------------

    def _should_throttle(self, method: str, target: str, headers: dict[str, str]) -> bool:
        """Count a request; whether to answer it with SlowDown instead of forwarding it."""
        with self._lock:
            if self._throttle_left > 0 and self._throttle_match(method, target):
                self._throttle_left -= 1
                self.throttled[method] += 1
                return True
            self.requests[method] += 1
            if _waits_for_continue(headers):
                self.continued[method] += 1
            return False

    def _count(self, name: str, amount: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._count("connections", 1)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            # (due time, what, bytes): "data" to the server, "reply" to the client then close,
            # "eof" when the client has sent everything.
            queue: asyncio.Queue[tuple[float, str, bytes]] = asyncio.Queue(maxsize=256)
            pumps = [asyncio.create_task(self._from_client(client_reader, queue)),
                     asyncio.create_task(self._to_server(queue, upstream_writer, client_writer)),
                     asyncio.create_task(self._to_client(upstream_reader, client_writer))]
            try:
                # The connection is over when the server has closed its side (everything it
                # sent is forwarded), a throttled request was answered, or either side failed.
                await asyncio.wait(pumps[1:], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                pass  # the proxy stops: close both sides below
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
            self._tasks.discard(task)

    async def _from_client(self, reader: asyncio.StreamReader,
                           queue: asyncio.Queue[tuple[float, str, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        requests = _Requests()
        dropping = ""  # the method of a throttled request, while its body is dropped
        try:
            while data := await reader.read(READ_SIZE):
                due = loop.time() + self.delay
                forward = bytearray()
                answer = False
                for kind, payload in requests.feed(data):
                    if kind == "head":
                        method, target, headers, raw = payload
                        if self._should_throttle(method, target, headers):
                            dropping = method
                            if _waits_for_continue(headers):  # no body until told to send it
                                answer = True
                                break
                        else:
                            forward += raw
                    elif kind == "end":
                        if dropping:
                            answer = True
                            break
                    elif not dropping:  # body or raw
                        forward += payload
                if forward:
                    self._count("sent", len(forward))
                    await queue.put((due, "data", bytes(forward)))
                if answer:
                    await queue.put((due, "reply", slow_down_response(dropping)))
                    return
        except (ConnectionError, OSError):
            pass
        await queue.put((loop.time() + self.delay, "eof", b""))

    async def _to_server(self, queue: asyncio.Queue[tuple[float, str, bytes]],
                         upstream: asyncio.StreamWriter, client: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, what, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if what == "data":
                    upstream.write(data)
                    await upstream.drain()
                elif what == "reply":
                    client.write(data)
                    await client.drain()
                    return
                else:  # the client sent everything: pass the half-close on, keep reading
                    if upstream.can_write_eof():
                        upstream.write_eof()
                    await asyncio.Event().wait()  # until the server closes
            except (ConnectionError, OSError):
                return

    async def _to_client(self, reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                self._count("received", len(data))
                client.write(data)
                await client.drain()
        except (ConnectionError, OSError):
            pass
