"""Helpers the benchmark scripts share: rates, timing, and printing the report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def ips(n: int, seconds: float) -> float:
    """Images per second, rounded for the report."""
    return round(n / seconds, 2) if seconds > 0 else 0.0


def timed(fn: Callable[[], Any]) -> float:
    """Seconds `fn()` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def print_report(report: dict[str, Any], as_json: bool) -> None:
    """Every figure on a line of its own (unless `as_json`), then the JSON object last."""
    if not as_json:
        for k, v in report.items():
            print(f"{k}: {v}")
    print(json.dumps(report))
