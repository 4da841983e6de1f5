"""Login throttling in Redis: failures per account and per client IP, in a sliding window.

Shared by every api process (the counters live in Redis). If Redis is unreachable
the limiter fails open and logs: logins keep working while Redis recovers.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("threadline.auth")


@dataclass
class LoginLimiter:
    redis: Any
    max_per_account: int = 10
    max_per_ip: int = 100
    window_seconds: int = 15 * 60

    def _keys(self, email: str, ip: str | None) -> list[str]:
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        keys = [f"threadline:login:acct:{digest}"]
        if ip:
            keys.append(f"threadline:login:ip:{ip}")
        return keys

    async def retry_after(self, email: str, ip: str | None) -> int | None:
        """Seconds until the caller may try again, or None if not limited."""
        if self.redis is None:
            return None
        try:
            keys = self._keys(email, ip)
            counts = await self.redis.mget(keys)
            limits = [self.max_per_account, self.max_per_ip]
            for key, count, limit in zip(keys, counts, limits, strict=False):
                if count is not None and int(count) >= limit:
                    ttl = await self.redis.ttl(key)
                    return max(int(ttl), 1)
        except Exception as exc:  # fail open: Redis is an accelerator, not a gate
            log.warning("login limiter unavailable: %s", exc)
        return None

    async def failed(self, email: str, ip: str | None) -> None:
        if self.redis is None:
            return
        try:
            pipe = self.redis.pipeline()
            for key in self._keys(email, ip):
                # Window starts at the first failure (SET NX EX); INCR keeps the TTL.
                # (EXPIRE … NX would need Redis 7; the embedded server is 6.2.)
                pipe.set(key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(key)
            await pipe.execute()
        except Exception as exc:
            log.warning("login limiter unavailable: %s", exc)

    async def succeeded(self, email: str) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.delete(self._keys(email, None)[0])
        except Exception as exc:
            log.warning("login limiter unavailable: %s", exc)
