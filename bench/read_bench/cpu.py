"""CPU time per request of our server, in-process and sequential (a noise-robust view).

    .venv/bin/python -m bench.read_bench.cpu [--queries abcd] [-n 40] [--repeat 3]
    .venv/bin/python -m bench.read_bench.cpu --source /tmp/before   # another source tree

Throughput on a shared 2-core machine moves with whatever else runs; the CPU time
one request costs the server process moves much less. This runs the real ASGI app
(middleware, bearer auth, GraphQL, PostgreSQL with row-level security) in this
process against the read-bench database (``run.py`` creates it), sends each query
``-n`` times one after the other through httpx's ASGI transport, and reports the
best of ``--repeat`` runs: process CPU ms and wall ms per request. The client's own
share (httpx) is included and small. ``--source`` imports ``app`` from another tree,
e.g. ``git archive <commit> app | tar -x -C /tmp/before``, for before/after numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", default="abcd")
    parser.add_argument("-n", type=int, default=40, help="requests per measured run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per query (best is kept)")
    parser.add_argument("--source", type=Path, default=None, help="import app from here")
    args = parser.parse_args()
    if args.source is not None:
        sys.path.insert(0, str(args.source.resolve()))

    from bench.read_bench import run as harness

    db_args = argparse.Namespace(database_url=None, redis_url=None, data_dir=harness.DATA)
    manifest = orjson.loads((harness.DATA / "manifest.json").read_bytes())
    with harness.database(db_args, migrate_db=False) as db:
        results = asyncio.run(measure(db, manifest, args))
    label = str(args.source) if args.source else "working tree"
    print(f"CPU per request, in-process, sequential ({label}); best of {args.repeat} x {args.n}:")
    for q, (cpu, wall) in results.items():
        print(f"  ({q}) {harness.QUERIES[q]}: {cpu:.2f} ms CPU, {wall:.2f} ms wall")


async def measure(
    db: Any, manifest: dict[str, Any], args: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    import httpx

    from bench.read_bench import run as harness
    from bench.read_bench.generate import SECRET

    os.environ.update(
        THREADLINE_DATABASE_URL=db.sa_url,
        THREADLINE_REDIS_URL=db.redis_url,
        THREADLINE_SECRET_KEY=SECRET,
        THREADLINE_LOG_LEVEL="warning",
    )
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings())
    headers = {"content-type": "application/json", "authorization": f"Bearer {manifest['token']}"}
    results: dict[str, tuple[float, float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for q in args.queries:
                bodies = harness.bodies(q, "ours", manifest)
                for i in range(5):  # warm caches, pools, prepared statements
                    r = await client.post(
                        "/graphql", content=bodies[i % len(bodies)], headers=headers
                    )
                    if r.status_code != 200 or b'"errors"' in r.content:
                        raise SystemExit(f"query {q} failed: {r.content[:300]!r}")
                best: tuple[float, float] | None = None
                for _ in range(args.repeat):
                    wall0, cpu0 = time.perf_counter(), time.process_time()
                    for i in range(args.n):
                        await client.post(
                            "/graphql", content=bodies[i % len(bodies)], headers=headers
                        )
                    cpu = (time.process_time() - cpu0) / args.n * 1000
                    wall = (time.perf_counter() - wall0) / args.n * 1000
                    if best is None or cpu < best[0]:
                        best = (cpu, wall)
                assert best is not None
                results[q] = best
    return results


if __name__ == "__main__":
    main()
