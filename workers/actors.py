"""Every actor module, imported by the worker process so Dramatiq declares them all.

Trade-study actors (DESIGN §1, Sweep) are added here as they land.
"""

from workers.broker import broker

__all__ = ["broker"]
