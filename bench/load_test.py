"""Mixed read/edit load against two api processes: throughput, latency, no lost edits.

    .venv/bin/python bench/load_test.py [--clients 50] [--duration 60] [--orgs 3]
        [--edit-share 0.3] [--params 6] [--wait-quiet 0] [--label TEXT]
        [--results bench/RESULTS.md | --no-write] [--append]

Starts its own embedded PostgreSQL and Redis in a temporary directory, migrates,
loads the smallsat demo for ``--orgs`` organizations (one API token each) and starts
TWO api processes (uvicorn subprocesses, as ``threadline serve`` runs them). Then
``--clients`` concurrent clients (asyncio + httpx, kept-alive connections, in this
process) run for ``--duration`` seconds; every request goes to the next api process
in turn (round-robin). Each client belongs to one organization and loops:

* with probability ``1 - edit-share`` a read, one of the demo's nested queries:
  - ``read.tree``: components with their parameters (value, unit, formula);
  - ``read.requirements``: requirements with compliance, margin, rule, the
    constrained parameter and the trace links with their targets;
  - ``read.impact``: ``m_payload`` with its downstream impact, dependents and history;
* otherwise an edit of one of ``--params`` independent mass parameters of its
  organization (shared with the other clients of that organization, so edits
  collide): ``edit.read`` fetches the version, ``edit.update`` sends
  ``parameterUpdate`` with ``expectedVersion``; on ``VersionConflictError`` the
  client re-reads and retries (up to 20 times).

Afterwards it checks, from PostgreSQL: no response was a 5xx (nor carried
``Internal server error.``), every read was error-free, and for every edited
parameter the successful ``parameterUpdate`` mutations the clients counted equal
both its version increments and its new ``parameter_versions`` rows with cause
``edit`` — no edit lost, none applied twice. Results go to this benchmark's own
section of ``bench/RESULTS.md``.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

SECRET = "bench-secret-key-0123456789"
MARK_START = "<!-- load_test:start -->"
MARK_END = "<!-- load_test:end -->"
MAX_RETRIES = 20

READS = {
    "read.tree": """query($p: ID!) { project(id: $p) { name eventSequence
      components(first: 50) { totalCount nodes { tag name path type { code }
        parameters(first: 20) { nodes { symbol number unit formula version } } } } } }""",
    "read.requirements": """query($p: ID!) { project(id: $p) {
      requirements(first: 50) { nodes { key title status compliance margin suspect
        rule { operator threshold unit } parameter { symbol number unit }
        links { kind suspect target { __typename ... on Component { tag }
          ... on Parameter { symbol } ... on Requirement { key } } } } } } }""",
    "read.impact": """query($p: ID!) { project(id: $p) { parameter(symbol: "m_payload") {
      symbol number unit version dependents { symbol number }
      impact { parameters { depth parameter { symbol number unit } }
        requirements { key compliance margin } }
      history(first: 10) { totalCount nodes { version number cause } } } } }""",
}
READ_VERSION = """query($p: ID!, $s: String!) { project(id: $p) { parameter(symbol: $s) {
  id version number } } }"""
UPDATE = """mutation($input: ParameterUpdateInput!) { parameterUpdate(input: $input) {
  __typename
  ... on ParameterChangeSuccess { sequence parameter { version } }
  ... on VersionConflictError { currentVersion }
  ... on UserError { code message } } }"""


# --- setup --------------------------------------------------------------------------


@dataclass
class Org:
    token: str
    project_gid: str
    project_id: uuid.UUID
    symbols: list[str]  # the independent parameters its clients edit


@dataclass
class Setup:
    database_url: str
    redis_url: str
    orgs: list[Org]
    pg_version: str
    redis_version: str


async def prepare(database_url: str, redis_url: str, n_orgs: int, n_params: int) -> Setup:
    import redis.asyncio as aioredis
    from sqlalchemy import text

    from app.db import make_engine, make_sessionmaker
    from app.demo.load import load_demo
    from app.graphql.common import global_id

    engine = make_engine(database_url)
    orgs = []
    try:
        sessionmaker = make_sessionmaker(engine)
        for i in range(n_orgs):
            async with sessionmaker() as s:
                demo = await load_demo(
                    s,
                    secret_key=SECRET,
                    email=f"load-{i}@example.test",
                    organization=f"Load test {i}",
                )
                await s.commit()
            async with sessionmaker() as s:
                rows = await s.execute(
                    text(
                        "SELECT symbol FROM parameters WHERE project_id = :p AND formula IS NULL"
                        " AND value_kind = 'number' AND symbol LIKE 'm\\_%' AND deleted_at IS NULL"
                        " ORDER BY symbol LIMIT :n"
                    ),
                    {"p": demo.project_id, "n": n_params},
                )
                symbols = [r[0] for r in rows]
            orgs.append(
                Org(
                    demo.token, str(global_id("Project", demo.project_id)), demo.project_id, symbols
                )
            )
        async with sessionmaker() as s:
            pg_version = str(await s.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()
    r = aioredis.from_url(redis_url)
    try:
        redis_version = str((await r.info("server"))["redis_version"])
    finally:
        await r.aclose()
    return Setup(database_url, redis_url, orgs, pg_version, redis_version)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_api(setup: Setup, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
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
                "--no-access-log",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
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


# --- the load -----------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    per_process: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx or masked internal errors
    other_errors: list[str] = field(default_factory=list)  # unexpected answers
    edits_ok: Counter[str] = field(default_factory=Counter)  # parameter gid -> successes
    conflicts: int = 0
    gave_up: int = 0


class Balancer:
    """Round-robin over the api processes, one request at a time."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.n = 0

    def next(self) -> str:
        url = self.urls[self.n % len(self.urls)]
        self.n += 1
        return url


async def call(
    http: httpx.AsyncClient,
    balancer: Balancer,
    stats: Stats,
    op: str,
    token: str,
    query: str,
    variables: dict[str, Any],
) -> dict[str, Any] | None:
    url = balancer.next()
    started = time.perf_counter()
    try:
        r = await http.post(
            url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        stats.other_errors.append(f"{op}: {type(exc).__name__}: {exc}")
        return None
    stats.latencies[op].append(time.perf_counter() - started)
    stats.statuses[r.status_code] += 1
    stats.per_process[url] += 1
    if r.status_code >= 500 or "Internal server error." in r.text:
        stats.server_errors.append(f"{op}: {r.status_code} {r.text[:300]}")
        return None
    body: dict[str, Any] = r.json()
    if r.status_code != 200 or body.get("errors"):
        stats.other_errors.append(f"{op}: {r.status_code} {r.text[:300]}")
        return None
    return body["data"]  # type: ignore[no-any-return]


async def client(
    i: int,
    org: Org,
    http: httpx.AsyncClient,
    balancer: Balancer,
    stats: Stats,
    deadline: float,
    edit_share: float,
) -> None:
    rng = random.Random(i)
    reads = list(READS)
    while time.monotonic() < deadline:
        if rng.random() >= edit_share:
            op = rng.choice(reads)
            await call(http, balancer, stats, op, org.token, READS[op], {"p": org.project_gid})
            continue
        symbol = rng.choice(org.symbols)
        for _attempt in range(MAX_RETRIES):
            data = await call(
                http,
                balancer,
                stats,
                "edit.read",
                org.token,
                READ_VERSION,
                {"p": org.project_gid, "s": symbol},
            )
            if data is None:
                break
            p = data["project"]["parameter"]
            value = round(p["number"] * rng.uniform(0.97, 1.03), 6)
            data = await call(
                http,
                balancer,
                stats,
                "edit.update",
                org.token,
                UPDATE,
                {"input": {"id": p["id"], "expectedVersion": p["version"], "number": value}},
            )
            if data is None:
                break
            result = data["parameterUpdate"]
            if result["__typename"] == "ParameterChangeSuccess":
                if result["parameter"]["version"] != p["version"] + 1:
                    stats.other_errors.append(f"edit.update: version jumped: {p} -> {result}")
                stats.edits_ok[p["id"]] += 1
                break
            if result["__typename"] == "VersionConflictError":
                stats.conflicts += 1
                continue  # re-read and retry
            stats.other_errors.append(f"edit.update: {result}")
            break
        else:
            stats.gave_up += 1


async def run_load(
    setup: Setup, urls: list[str], clients: int, duration: float, edit_share: float
) -> tuple[Stats, float]:
    stats = Stats()
    balancer = Balancer(urls)
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close
    # them under a request (the classic keep-alive race, a client-side transport error).
    limits = httpx.Limits(
        max_connections=clients * 2, max_keepalive_connections=clients * 2, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        # Warm up each process (connections, caches) before the clock starts.
        for url in urls:
            for op, q in READS.items():
                org = setup.orgs[0]
                await http.post(
                    url + "/graphql",
                    json={"query": q, "variables": {"p": org.project_gid}},
                    headers={"Authorization": f"Bearer {org.token}"},
                )
                del op
        started = time.monotonic()
        deadline = started + duration
        await asyncio.gather(
            *(
                client(i, setup.orgs[i % len(setup.orgs)], http, balancer, stats, deadline,
                       edit_share)
                for i in range(clients)
            )
        )  # fmt: skip
        wall = time.monotonic() - started
    return stats, wall


# --- verification -------------------------------------------------------------------


@dataclass
class Snapshot:
    versions: dict[str, int]  # parameter gid -> version
    edit_rows: dict[str, int]  # parameter gid -> parameter_versions rows with cause 'edit'


async def snapshot(setup: Setup) -> Snapshot:
    from sqlalchemy import text

    from app.db import make_engine, make_sessionmaker
    from app.graphql.common import global_id

    engine = make_engine(setup.database_url)
    try:
        async with make_sessionmaker(engine)() as s:
            rows = await s.execute(
                text(
                    "SELECT p.id, p.version, (SELECT count(*) FROM parameter_versions v"
                    " WHERE v.parameter_id = p.id AND v.cause = 'edit') AS edits,"
                    " (SELECT count(*) - count(DISTINCT v.version) FROM parameter_versions v"
                    " WHERE v.parameter_id = p.id) AS dup"
                    " FROM parameters p WHERE p.project_id = ANY(:ids)"
                ),
                {"ids": [o.project_id for o in setup.orgs]},
            )
            versions, edit_rows = {}, {}
            for pid, version, edits, dup in rows:
                if dup:
                    raise AssertionError(f"parameter {pid} has duplicated version rows")
                gid = str(global_id("Parameter", pid))
                versions[gid], edit_rows[gid] = version, edits
    finally:
        await engine.dispose()
    return Snapshot(versions, edit_rows)


def verify(stats: Stats, before: Snapshot, after: Snapshot) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) for every check of the run."""
    checks = []
    five = sum(n for s, n in stats.statuses.items() if s >= 500)
    checks.append(
        (
            "zero 5xx responses / internal errors",
            five == 0 and not stats.server_errors,
            f"{five} 5xx, {len(stats.server_errors)} internal errors",
        )
    )
    checks.append(
        (
            "zero other errors (reads error-free, no transport errors)",
            not stats.other_errors,
            f"{len(stats.other_errors)}",
        )
    )
    edited = set(before.versions) | set(after.versions)
    bumps = {p: after.versions.get(p, 0) - before.versions.get(p, 0) for p in edited}
    rows = {p: after.edit_rows.get(p, 0) - before.edit_rows.get(p, 0) for p in edited}
    ok = sum(stats.edits_ok.values())
    mismatched = [
        p
        for p in edited
        if stats.edits_ok.get(p, 0) != rows[p]
        or (stats.edits_ok.get(p, 0) and stats.edits_ok[p] != bumps[p])
    ]
    checks.append(
        (
            "successful parameterUpdate = version increments of the edited parameters",
            sum(bumps[p] for p in stats.edits_ok) == ok
            and all(stats.edits_ok[p] == bumps[p] for p in stats.edits_ok),
            f"{ok:,} successful mutations, {sum(bumps[p] for p in stats.edits_ok):,} increments"
            f" over {len(stats.edits_ok)} parameters",
        )
    )
    checks.append(
        (
            "successful parameterUpdate = new parameter_versions rows with cause 'edit'",
            sum(rows.values()) == ok and not mismatched,
            f"{ok:,} successful mutations, {sum(rows.values()):,} new 'edit' rows"
            + (f"; mismatched parameters: {mismatched[:5]}" if mismatched else ""),
        )
    )
    checks.append(
        (
            "every edit eventually applied (no retry budget exhausted)",
            stats.gave_up == 0,
            f"{stats.gave_up} gave up after {MAX_RETRIES} conflicts",
        )
    )
    return checks


# --- report -------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def machine_cpu_busy(before: Any, after: Any, wall: float) -> float:
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return float((sum(after) - sum(before) - idle) / wall)


DESCRIPTION = """\
Two api processes (uvicorn, uvloop, httptools) behind a client-side round-robin,
embedded PostgreSQL and Redis, and the clients (one asyncio process, httpx, kept-alive
connections) all share this machine. The clients mix reads of the demo's nested
queries with edits of independent mass parameters (shared by all clients of an
organization, so edits collide: a `VersionConflictError` makes the client re-read the
version and retry). Latencies are per HTTP request, in ms; an edit is `edit.read` +
`edit.update` (conflicts included). The checks compare what the clients saw with what
PostgreSQL holds afterwards. This machine is shared with other work: the CPU line
says how many cores the api processes actually got; *api CPU per request* does not
depend on that.
"""


def run_block(
    args: argparse.Namespace,
    command: str,
    setup: Setup,
    stats: Stats,
    wall: float,
    checks: list[tuple[str, bool, str]],
    cpu: dict[str, float],
) -> str:
    total = sum(len(v) for v in stats.latencies.values())
    rows = [
        "| Operation | Requests | req/s | p50 | **p99** | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ops = [*READS, "edit.read", "edit.update"]
    for op in ops:
        lat = sorted(stats.latencies.get(op, []))
        rows.append(
            f"| `{op}` | {len(lat):,} | {len(lat) / wall:.1f} | {ms(percentile(lat, 50))} "
            f"| **{ms(percentile(lat, 99))}** | {ms(lat[-1] if lat else 0)} |"
        )
    every = sorted(x for v in stats.latencies.values() for x in v)
    rows.append(
        f"| **all** | {total:,} | **{total / wall:.1f}** | {ms(percentile(every, 50))} "
        f"| **{ms(percentile(every, 99))}** | {ms(every[-1] if every else 0)} |"
    )
    ok = sum(stats.edits_ok.values())
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    check_rows = ["| Check | Result | Detail |", "|---|---|---|"]
    check_rows += [f"| {name} | {'✅ pass' if p else '❌ FAIL'} | {d} |" for name, p, d in checks]
    split = " / ".join(f"{n:,}" for _, n in sorted(stats.per_process.items()))
    return "\n".join(
        [
            f"### Run {when}",
            "",
            "```sh",
            command,
            "```",
            "",
            f"{args.clients} clients for {wall:.1f} s, {len(setup.orgs)} organizations, "
            f"edit share {args.edit_share:.0%}, {args.params} parameters edited per "
            f"organization; requests per api process: {split}. Successful edits: {ok:,} "
            f"({ok / wall:.1f}/s), version conflicts retried: {stats.conflicts:,}. "
            f"api CPU per request {cpu['api'] * wall / max(total, 1) * 1000:.1f} ms. "
            f"CPU (cores): api processes {cpu['api']:.2f}, clients {cpu['client']:.2f}, "
            f"whole machine {cpu['machine']:.2f} of {os.cpu_count()}, load average "
            f"{cpu['load']:.1f}" + (f"; {args.label}" if args.label else "") + ".",
            "",
            *rows,
            "",
            *check_rows,
            "",
        ]
    )


def write_results(path: Path, block: str, *, append: bool) -> None:
    """Write (or with ``append`` add) the run in this benchmark's own section, between
    its markers; the rest of the file is left exactly as it is."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    heading = "## Load: 50 clients, reads and edits, two api processes (`bench/load_test.py`)"
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


def wait_quiet(limit: float, threshold: float = 0.35, window: float = 3.0) -> None:
    """Wait (at most ``limit`` s) until other processes use less than ``threshold`` cores."""
    import psutil

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = psutil.cpu_times()
        time.sleep(window)
        busy = machine_cpu_busy(before, psutil.cpu_times(), window)
        if busy < threshold:
            return
        print(f"  machine busy ({busy:.2f} cores in use); waiting...", flush=True)


# --- main ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--orgs", type=int, default=3, help="organizations (demo copies)")
    parser.add_argument("--edit-share", type=float, default=0.3, help="share of edits")
    parser.add_argument("--params", type=int, default=6, help="edited parameters per org")
    parser.add_argument("--wait-quiet", type=float, default=0.0, help="max s to wait for idle")
    parser.add_argument("--label", default="", help="a note for the results")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--append", action="store_true", help="add to the section's runs")
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "bench/load_test.py", *sys.argv[1:]])

    import psutil

    from app import migrate
    from app.embedded import start_embedded

    # `kill <pid>` cleans up like Ctrl-C: the api processes and the embedded servers stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="tl-load-"))
    services = start_embedded(tmp, database_url=None, redis_url=None)
    apis: list[subprocess.Popen[bytes]] = []
    try:
        assert services.database_url is not None and services.redis_url is not None
        migrate.upgrade(services.database_url)
        print(f"loading the demo for {args.orgs} organizations...", flush=True)
        setup = asyncio.run(
            prepare(services.database_url, services.redis_url, args.orgs, args.params)
        )
        urls = []
        for n in range(2):
            proc, url = start_api(setup, tmp / f"api-{n}.log")
            apis.append(proc)
            urls.append(url)
        print(f"api processes: {', '.join(urls)}", flush=True)
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        before = asyncio.run(snapshot(setup))
        procs = [psutil.Process(p.pid) for p in apis]
        me = psutil.Process()
        cpu0 = (
            sum(p.cpu_times().user + p.cpu_times().system for p in procs),
            me.cpu_times().user + me.cpu_times().system,
            psutil.cpu_times(),
        )
        print(f"{args.clients} clients for {args.duration:.0f} s...", flush=True)
        stats, wall = asyncio.run(
            run_load(setup, urls, args.clients, args.duration, args.edit_share)
        )
        cpu = {
            "api": (sum(p.cpu_times().user + p.cpu_times().system for p in procs) - cpu0[0]) / wall,
            "client": (me.cpu_times().user + me.cpu_times().system - cpu0[1]) / wall,
            "machine": machine_cpu_busy(cpu0[2], psutil.cpu_times(), wall),
            "load": os.getloadavg()[0],
        }
        after = asyncio.run(snapshot(setup))
        checks = verify(stats, before, after)
        block = run_block(args, command, setup, stats, wall, checks, cpu)
        print()
        print(block)
        for sample in (stats.server_errors + stats.other_errors)[:10]:
            print(f"  error: {sample}")
        if not args.no_write:
            write_results(args.results, block, append=args.append)
            print(f"written to {args.results}")
        if not all(passed for _, passed, _ in checks):
            sys.exit(1)
    finally:
        for proc in apis:
            proc.terminate()
        for proc in apis:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        services.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
