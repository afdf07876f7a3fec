"""Test servers: the real floodgate binary, uvicorn and waitress running real
apps, and broken sidecars (down, silent, answering 503). Everything listens
on free loopback ports (port 0)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent

#: The policies every test shares; tests keep apart by unique user ids.
POLICIES = """
[[policy]]
name = "per-user"
match = { endpoint = "limited" }
key = ["user"]
limit = 2
window = "1m"

[[policy]]
name = "one-at-a-time"
match = { endpoint = "single" }
key = ["user"]
algorithm = "concurrency"
limit = 1

[[policy]]
name = "by-path"
match = { path = "/default" }
key = ["user"]
limit = 1
window = "1m"
"""

FREE_PORTS = '[server]\nhttp = "127.0.0.1:0"\ngrpc = "127.0.0.1:0"\n'


def binary() -> Path:
    """FLOODGATE_BIN, else the debug build next to the repository."""
    path = Path(os.environ.get("FLOODGATE_BIN", PACKAGE / "../../target/debug/floodgate"))
    if not path.exists():
        pytest.fail(f"{path} is missing: build it (cargo build --bin floodgate) or set FLOODGATE_BIN")
    return path


class Floodgate:
    """A running `floodgate serve` on free ports."""

    def __init__(self, policies: str) -> None:
        self.dir = tempfile.TemporaryDirectory()
        config = Path(self.dir.name) / "floodgate.toml"
        config.write_text(FREE_PORTS + policies)
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": "info"},
            text=True,
        )
        self.log: List[str] = []
        started = threading.Event()
        self.url = ""

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                if "floodgate listening" in line and not started.is_set():
                    addr = line.split("http=", 1)[1].split()[0]
                    self.url = f"http://{addr}"
                    started.set()
            started.set()  # it exited: fail at once, with its log

        threading.Thread(target=drain, daemon=True).start()
        if not started.wait(20) or not self.url:
            self.stop()
            pytest.fail("floodgate did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


@pytest.fixture(scope="session")
def floodgate() -> Iterator[Floodgate]:
    server = Floodgate(POLICIES)
    yield server
    server.stop()


@pytest.fixture
def user() -> str:
    """A user id no other test uses."""
    return "u-" + uuid.uuid4().hex[:12]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def down_url() -> str:
    """A loopback port nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A sidecar that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def failing_url() -> Iterator[str]:
    """A sidecar that answers every request 503 with a JSON error."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", "0")))
            body = b'{"error":"the store could not decide"}'
            self.send_response(503)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Runs an ASGI app with uvicorn in a thread on a free port."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def waitress_server(app: Any) -> Iterator[str]:
    """Runs a WSGI app with waitress in a thread on a free port."""
    import waitress

    server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except Exception:
            if not stopping.is_set():  # sockets closed under select() at the end
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # The loop runs while its socket map holds a channel: close them all.
        stopping.set()
        server.task_dispatcher.shutdown(timeout=1)
        for channel in list(server._map.values()):
            channel.close()
        thread.join(10)
        assert not thread.is_alive(), "waitress did not stop"


def raw_get(url: str, path: str, headers: Optional[dict] = None) -> socket.socket:
    """Sends a GET on a fresh connection and returns the open socket."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def eventually(predicate: Any, seconds: float = 10.0) -> bool:
    """Polls ``predicate`` until it is true or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


class ScriptedSidecar:
    """A fake floodgate: answers each path from a queue of (status, JSON
    body) and records the request bodies it got."""

    def __init__(self) -> None:
        import json

        self.answers: Dict[str, List[Tuple[int, Any]]] = {}
        self.requests: List[Tuple[str, Any]] = []
        sidecar = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                sidecar.requests.append((self.path, json.loads(raw)))
                status, body = sidecar.answers[self.path].pop(0)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 429:
                    self.send_header("retry-after", "2")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, status: int, body: Any) -> None:
        self.answers.setdefault(path, []).append((status, body))


@pytest.fixture
def scripted() -> Iterator[ScriptedSidecar]:
    sidecar = ScriptedSidecar()
    yield sidecar
    sidecar.server.shutdown()
    sidecar.server.server_close()
