"""Every actor module, imported by the worker process so Dramatiq declares them all."""

from workers import trade_studies
from workers.broker import broker

__all__ = ["broker", "trade_studies"]
