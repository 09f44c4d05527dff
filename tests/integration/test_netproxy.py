"""The latency proxy the S3 tests and benchmarks/s3.py put between a client and a server:
its delay is paid once per round trip (not once per chunk), it counts requests by method
whatever their framing, and its SlowDown answers are ones botocore retries."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.netproxy import SLOW_DOWN_BODY, LatencyProxy


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 servers do

    def _answer(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):  # trailers
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.command, self.path, body))  # type: ignore[attr-defined]
        reply = b"%d bytes" % len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_PUT = do_HEAD = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def _request(proxy: LatencyProxy, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    connection = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), timeout=10)
    start = time.perf_counter()
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    seconds = time.perf_counter() - start
    connection.close()
    return response.status, data, seconds


def test_the_delay_is_paid_once_per_round_trip_not_once_per_chunk(server: ThreadingHTTPServer) -> None:
    big = b"x" * (8 * 1024 * 1024)  # about 128 reads of 64 KB on the proxy
    with LatencyProxy(_url(server), delay=0) as direct:
        _, _, base = _request(direct, "PUT", "/big", big)
    with LatencyProxy(_url(server), delay=0.1) as proxy:
        status, data, small = _request(proxy, "GET", "/small")
        assert (status, data) == (200, b"0 bytes")
        status, data, seconds = _request(proxy, "PUT", "/big", big)
    assert (status, data) == (200, b"%d bytes" % len(big))
    assert 0.1 <= small < 0.3
    assert 0.1 <= seconds < base + 0.3, f"{seconds:.2f} s: the delay added up chunk after chunk"
    assert server.seen[-1] == ("PUT", "/big", big)  # type: ignore[attr-defined]


def test_requests_are_counted_by_method_whatever_their_framing(server: ThreadingHTTPServer) -> None:
    with LatencyProxy(_url(server), delay=0.01) as proxy:
        with socket.create_connection(proxy.url.removeprefix("http://").split(":")) as raw:
            # One keep-alive connection: a chunked PUT with a trailer, then a HEAD and a GET.
            raw.sendall(b"PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n")
            reader = raw.makefile("rb")
            assert reader.readline().startswith(b"HTTP/1.1 200")
            while reader.readline() != b"\r\n":
                pass
            assert reader.read(len(b"11 bytes")) == b"11 bytes"
            raw.sendall(b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
            while reader.readline() != b"\r\n":  # the HEAD's answer
                pass
            assert reader.readline().startswith(b"HTTP/1.1 200")
        _request(proxy, "POST", "/d", b"z" * 100_000)
        for _ in range(50):
            if proxy.counts()["requests"].get("POST"):
                break
            time.sleep(0.01)
        counts = proxy.counts()
    assert counts["requests"] == {"PUT": 1, "HEAD": 1, "GET": 1, "POST": 1}
    assert [(m, p, b) for m, p, b in server.seen] == [  # type: ignore[attr-defined]
        ("PUT", "/a", b"hello world"), ("HEAD", "/b", b""), ("GET", "/c", b""), ("POST", "/d", b"z" * 100_000)]
    assert counts["sent"] > 100_000 and counts["received"] > 0


def test_throttled_requests_get_slow_down_and_never_reach_the_server(server: ThreadingHTTPServer) -> None:
    with LatencyProxy(_url(server), delay=0.05) as proxy:
        proxy.throttle(2, lambda method, target: method == "PUT" and target.startswith("/docs/"))
        status, body, seconds = _request(proxy, "PUT", "/docs/1", b"a" * 300_000)
        assert (status, body) == (503, SLOW_DOWN_BODY)
        assert seconds >= 0.05  # answered after the delay, as the server would have
        assert _request(proxy, "GET", "/docs/1")[0] == 200  # not matched: through
        status, body, _ = _request(proxy, "PUT", "/docs/2", b"b" * 10,
                                   headers={"Expect": "100-continue"})
        assert (status, body) == (503, SLOW_DOWN_BODY)  # answered before any body was sent
        assert _request(proxy, "PUT", "/docs/3", b"c")[:2] == (200, b"1 bytes")  # budget spent
        status, _, _ = _request(proxy, "PUT", "/docs/4", b"d", headers={"Expect": "100-continue"})
        assert status == 200  # (http.client sends the body at once: servers take that too)
        counts = proxy.counts()
    assert counts["throttled"] == {"PUT": 2}
    assert counts["requests"] == {"GET": 1, "PUT": 2}
    assert counts["continued"] == {"PUT": 1}  # a request that waited for "100 Continue"
    assert [(m, p) for m, p, _ in server.seen] == [  # type: ignore[attr-defined]
        ("GET", "/docs/1"), ("PUT", "/docs/3"), ("PUT", "/docs/4")]


def test_botocore_takes_the_answer_for_s3_throttling_and_retries(s3_endpoint: str) -> None:
    import boto3
    from botocore.config import Config

    with LatencyProxy(s3_endpoint, delay=0) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              config=Config(retries={"mode": "standard", "max_attempts": 4}))
        client.create_bucket(Bucket="throttled")
        proxy.throttle(2, lambda method, target: method == "PUT")
        client.put_object(Bucket="throttled", Key="k", Body=b"x" * 50_000)
        assert client.get_object(Bucket="throttled", Key="k")["Body"].read() == b"x" * 50_000
        proxy.throttle(1)
        once = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"total_max_attempts": 1}))
        with pytest.raises(once.exceptions.ClientError) as refused:
            once.get_object(Bucket="throttled", Key="k")
        assert refused.value.response["Error"]["Code"] == "SlowDown"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert proxy.counts()["throttled"] == {"PUT": 2, "GET": 1}
