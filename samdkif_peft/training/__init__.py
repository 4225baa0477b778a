"""Training helpers for skills and routers (the stock `Trainer` does the rest)."""

from .callbacks import AdaLoraAllocateCallback


__all__ = ["AdaLoraAllocateCallback"]
