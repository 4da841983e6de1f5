"""Trade-study throughput, end to end, against OpenMDAO's DOEDriver as the peer.

    .venv/bin/python bench/trade_study_bench.py [--sizes 10000,100000,1000000]
        [--processes 1,2] [--repeat 2] [--database-url URL --redis-url URL]
        [--skip-openmdao]

Starts embedded PostgreSQL and Redis in a temporary directory (unless URLs are
given), migrates, loads the smallsat demo, and for 1 and 2 Dramatiq worker
processes (``python -m dramatiq workers.actors --processes P --threads 2``) runs
the demo's trade study (altitude, cell efficiency, data rate, Isp → m_wet, m_prop,
link_margin, power_margin, dod, T_orbit; objectives m_wet↓ link_margin↑; the five
rule requirements on outputs as constraints) as a full-factorial GRID of 10^4
(10·10·10·10), 10^5 (10·10·10·100) and 10^6 (10·10·100·100) scenarios.

End to end = from ``tradeStudyStart`` (the service call: validate, commit, enqueue)
until PostgreSQL shows the study COMPLETED: plan, design, every scenario and
result row COPYed, Pareto front marked, summary stored. Each configuration gets a
warm-up study first (worker start-up and imports are not measured). Also reported:
the CPU seconds the worker processes and the PostgreSQL server used (embedded
server only), and the load average, since the machine may be shared.

The peer: the same 10^4-scenario full factorial with OpenMDAO's ``DOEDriver``
(``FullFactorialGenerator(levels=10)``, needs ``pydoe``) and a ``SqliteRecorder``
on the driver, evaluating the same compiled demo model one case at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app import migrate  # noqa: E402
from app.audit.service import RequestMeta  # noqa: E402
from app.auth.service import resolve_token  # noqa: E402
from app.db import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from app.demo.load import load_demo  # noqa: E402
from app.demo.model import demo_model  # noqa: E402
from app.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402
from app.trade_studies import service  # noqa: E402
from app.trade_studies.definition import ObjectiveInput, VariableInput  # noqa: E402
from app.trade_studies.models import TradeStudy  # noqa: E402

SECRET = "bench-secret-key-0123456789"
META = RequestMeta(request_id="bench", ip=None, user_agent="bench")
LEVELS = {
    10_000: (10, 10, 10, 10),
    100_000: (10, 10, 10, 100),
    1_000_000: (10, 10, 100, 100),
}


@dataclass
class Run:
    size: int
    processes: int
    seconds: float  # start → COMPLETED seen in PostgreSQL
    run_seconds: float  # started_at → completed_at (database clock)
    worker_cpu: float
    postgres_cpu: float | None
    load: float

    @property
    def rate(self) -> float:
        return self.size / self.seconds


@dataclass
class Bench:
    url: str
    redis_url: str
    postmaster: int | None
    log_dir: Path
    threads: int = 2
    runs: list[Run] = field(default_factory=list)


def grid_variables(size: int) -> list[VariableInput]:
    spec = demo_model().trade_studies[0]
    return [
        VariableInput(symbol=v.symbol, unit=v.unit, min=v.min, max=v.max, levels=n)
        for v, n in zip(spec.variables, LEVELS[size], strict=True)
    ]


def start_worker(bench: Bench, processes: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": bench.url,
        "REDIS_URL": bench.redis_url,
        "THREADLINE_LOG_LEVEL": "warning",
        "dramatiq_worker_timeout": "100",  # idle queue polled every 100 ms
    }
    log = (bench.log_dir / f"worker-{processes}.log").open("ab")
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "dramatiq", "workers.actors"),
            *("--processes", str(processes), "--threads", str(bench.threads)),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def worker_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    return [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]


def postgres_pids(postmaster: int | None) -> list[int]:
    if postmaster is None:
        return []
    return [postmaster] + [c.pid for c in psutil.Process(postmaster).children()]


async def run_study(
    bench: Bench, maker: Any, actor: Any, project_id: uuid.UUID, size: int, **kw: Any
) -> tuple[float, float]:
    spec = demo_model().trade_studies[0]
    async with unit_of_work(maker) as s:
        study = await service.trade_study_create(
            s,
            actor=actor,
            meta=META,
            project_id=project_id,
            name=f"bench {size}",
            method=kw.get("method", "GRID"),
            variables=kw.get("variables") or grid_variables(size),
            outputs=list(spec.outputs),
            objectives=[ObjectiveInput(sym, sense) for sym, sense in spec.objectives],
            sample_count=kw.get("sample_count"),
            seed=kw.get("seed"),
        )
    t0 = time.perf_counter()
    async with unit_of_work(maker) as s:
        await service.trade_study_start(
            s,
            actor=actor,
            meta=META,
            study_id=study.id,
            redis_url=bench.redis_url,
            chunk_size=kw.get("chunk_size"),
        )
    while True:
        async with maker() as s:
            row = (
                await s.execute(
                    select(
                        TradeStudy.status,
                        TradeStudy.done,
                        TradeStudy.started_at,
                        TradeStudy.completed_at,
                        TradeStudy.error,
                    ).where(TradeStudy.id == study.id)
                )
            ).one()
        if row.status in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - t0
    if row.status != "COMPLETED" or (row.done != size and kw.get("method", "GRID") == "GRID"):
        raise RuntimeError(f"study ended {row.status} {row.done}/{size}: {row.error}")
    return seconds, (row.completed_at - row.started_at).total_seconds()


async def measure(bench: Bench, sizes: list[int], processes: list[int], repeat: int) -> None:
    engine = make_engine(bench.url)
    maker = make_sessionmaker(engine)
    tag = uuid.uuid4().hex[:8]
    try:
        async with unit_of_work(maker) as s:
            demo = await load_demo(
                s, secret_key=SECRET, email=f"bench-{tag}@example.test", organization=f"B {tag}"
            )
        async with maker() as s:
            actor = await resolve_token(s, token=demo.token, secret_key=SECRET)
        for p in processes:
            proc = start_worker(bench, p)
            try:
                # Warm-up: enough chunks for every process to boot, import and plan once.
                spec = demo_model().trade_studies[0]
                lhs = [
                    VariableInput(symbol=v.symbol, unit=v.unit, min=v.min, max=v.max)
                    for v in spec.variables
                ]
                for _ in range(2):
                    await run_study(
                        bench,
                        maker,
                        actor,
                        demo.project_id,
                        8_000,
                        method="LATIN_HYPERCUBE",
                        variables=lhs,
                        sample_count=8_000,
                        seed=1,
                        chunk_size=500,
                    )
                for size in sizes:
                    for _ in range(repeat):
                        w0, g0 = cpu_of(worker_pids(proc)), cpu_of(postgres_pids(bench.postmaster))
                        seconds, run_seconds = await run_study(
                            bench, maker, actor, demo.project_id, size
                        )
                        w1, g1 = cpu_of(worker_pids(proc)), cpu_of(postgres_pids(bench.postmaster))
                        result = Run(
                            size,
                            p,
                            seconds,
                            run_seconds,
                            w1 - w0,
                            (g1 - g0) if bench.postmaster else None,
                            os.getloadavg()[0],
                        )
                        bench.runs.append(result)
                        pg_cpu = result.postgres_cpu
                        print(
                            f"  {p} process(es), {size:>9,} scenarios: {seconds:6.2f} s "
                            f"= {result.rate:>9,.0f} scenarios/s (run {run_seconds:.2f} s; "
                            f"CPU worker {result.worker_cpu:.1f} s, postgres "
                            f"{pg_cpu if pg_cpu is not None else float('nan'):.1f} s;"
                            f" load {result.load:.1f})",
                            flush=True,
                        )
            finally:
                stop_worker(proc)
    finally:
        await engine.dispose()


def openmdao_peer(levels: int = 10) -> tuple[int, float]:
    """The same full factorial with OpenMDAO's DOEDriver and a SqliteRecorder."""
    import warnings

    import openmdao.api as om  # type: ignore[import-untyped]

    warnings.simplefilter("ignore")
    spec = demo_model().trade_studies[0]
    symbols = [v.symbol for v in spec.variables]
    outputs = list(spec.outputs)
    model = demo_model().parameter_graph().compile(symbols, outputs)

    class DemoModel(om.ExplicitComponent):  # type: ignore[misc]
        def setup(self) -> None:
            for v in spec.variables:
                self.add_input(v.symbol, val=(v.min + v.max) / 2)
            for o in outputs:
                self.add_output(o)

        def compute(self, inputs: Any, out: Any) -> None:
            result = model({s: inputs[s] for s in symbols})
            for o in outputs:
                out[o] = result[o]

    prob = om.Problem(reports=False)
    prob.model.add_subsystem("demo", DemoModel(), promotes=["*"])
    for v in spec.variables:
        prob.model.add_design_var(v.symbol, lower=v.min, upper=v.max)
    prob.model.add_objective("m_wet")
    for o in outputs[1:]:
        prob.model.add_constraint(o, lower=-1e30)
    prob.driver = om.DOEDriver(om.FullFactorialGenerator(levels=levels))
    folder = Path(tempfile.mkdtemp(prefix="tl-om-"))
    path = folder / "cases.sql"
    prob.driver.add_recorder(om.SqliteRecorder(str(path)))
    prob.setup()
    start = time.perf_counter()
    prob.run_driver()
    prob.cleanup()
    seconds = time.perf_counter() - start
    cases = om.CaseReader(str(path)).list_cases("driver", out_stream=None)
    shutil.rmtree(folder, ignore_errors=True)
    return len(cases), seconds


def postmaster_pid(pg_dir: Path) -> int | None:
    try:
        return int((pg_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--skip-openmdao", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    processes = [int(p) for p in args.processes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="tl-tsbench-"))
    pg = redis = None
    url, redis_url = args.database_url, args.redis_url
    if url is None:
        pg = EmbeddedPostgres(tmp / "pg")
        url = pg.start()
    if redis_url is None:
        redis = EmbeddedRedis(tmp / "redis")
        redis_url = redis.start()
    print(
        f"threadline trade-study bench - Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"PostgreSQL {'embedded' if pg else url}",
        flush=True,
    )
    try:
        migrate.upgrade(url)
        bench = Bench(url, redis_url, postmaster_pid(tmp / "pg") if pg else None, tmp, args.threads)
        asyncio.run(measure(bench, sizes, processes, args.repeat))
    finally:
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # gigabytes of scenarios

    print(
        "\n| scenarios | worker processes | start → COMPLETED (best / median) | scenarios/s "
        "(best) | worker CPU | PostgreSQL CPU |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for p in processes:
            runs = sorted(
                (r for r in bench.runs if r.size == size and r.processes == p),
                key=lambda r: r.seconds,
            )
            if not runs:
                continue
            best = runs[0]
            pg_cpu = f"{best.postgres_cpu:.1f} s" if best.postgres_cpu is not None else "n/a"
            print(
                f"| {size:,} | {p} | {best.seconds:.2f} s / "
                f"{statistics.median(r.seconds for r in runs):.2f} s | {best.rate:,.0f} | "
                f"{best.worker_cpu:.1f} s | {pg_cpu} |"
            )
    if not args.skip_openmdao:
        n, seconds = openmdao_peer()
        print(
            f"| {n:,} (OpenMDAO DOEDriver, FullFactorial, SqliteRecorder) | 1 | "
            f"{seconds:.2f} s | {n / seconds:,.0f} | | |"
        )
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
