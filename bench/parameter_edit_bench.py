"""One demo-chain edit through the service layer, commit included.

    .venv/bin/python bench/parameter_edit_bench.py [--n 50] [--database-url URL]

Loads a copy of the smallsat demo (embedded PostgreSQL in a temporary directory
unless --database-url is given), then times ``parameter_update`` of the payload
mass (alternating 20/24 kg, so m_dry, m_prop, m_wet and REQ-MASS-001 change every
time) in its own session and transaction, commit included. Prints median/p90/min.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from app import migrate
from app.audit.service import RequestMeta
from app.auth.service import resolve_token
from app.db import make_engine, make_sessionmaker, run_after_commit
from app.demo.load import load_demo
from app.embedded import EmbeddedPostgres
from app.parameters.models import Parameter
from app.parameters.service import parameter_update

SECRET = "bench-secret-key-0123456789"


async def run(url: str, n: int) -> list[float]:
    engine = make_engine(url)
    maker = make_sessionmaker(engine)
    tag = uuid.uuid4().hex[:8]
    try:
        async with maker() as s:
            demo = await load_demo(
                s, secret_key=SECRET, email=f"bench-{tag}@example.test", organization=f"B {tag}"
            )
            await s.commit()
        async with maker() as s:
            actor = await resolve_token(s, token=demo.token, secret_key=SECRET)
            payload = await s.scalar(
                select(Parameter).where(
                    Parameter.project_id == demo.project_id, Parameter.symbol == "m_payload"
                )
            )
        assert payload is not None
        meta = RequestMeta(request_id="bench", ip=None, user_agent="bench")
        version, samples = payload.version, []
        for i in range(n + 5):  # the first 5 warm caches and the pool
            start = time.perf_counter()
            async with maker() as s:
                result = await parameter_update(
                    s,
                    actor=actor,
                    meta=meta,
                    parameter_id=payload.id,
                    expected_version=version,
                    value=24.0 if i % 2 == 0 else 20.0,
                )
                await s.commit()
                await run_after_commit(s)
            elapsed = time.perf_counter() - start
            assert len(result.recomputed) == 3 and len(result.compliance_changes) == 1
            version += 1
            if i >= 5:
                samples.append(elapsed)
        return samples
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    pg = None
    url = args.database_url
    if url is None:
        pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="tl-bench-")) / "pg")
        url = pg.start()
    try:
        migrate.upgrade(url)
        samples = asyncio.run(run(url, args.n))
    finally:
        if pg is not None:
            pg.stop()
    ms = sorted(s * 1000 for s in samples)
    print(
        f"parameter_update m_payload (demo chain: 3 recomputed, 1 requirement flip), "
        f"commit included, n={len(ms)}: median {statistics.median(ms):.2f} ms, "
        f"p90 {ms[int(len(ms) * 0.9) - 1]:.2f} ms, min {ms[0]:.2f} ms"
    )


if __name__ == "__main__":
    main()
