"""Figures as a report shows them: latencies and ratios to 3 significant digits, counts with thousands
separators. results.json keeps full precision; only the reports round."""
from __future__ import annotations

import math
from typing import Any


def significant(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, thousands separated, never in exponent form.

    1426.7161 -> "1,430", 0.0999 -> "0.0999", 2.4373 -> "2.44", 9.996 -> "10.0"; an int is a count and is
    shown whole ("12,345"); None (not measured) is "—".
    """
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")  # may carry into the next power of ten: 9.996 -> 10.0
    decimals = max(digits - 1 - math.floor(math.log10(abs(rounded))), 0)
    return f"{rounded:,.{decimals}f}"


def kib(n: int | None) -> str:
    """A size in bytes as KiB to 3 significant digits."""
    return "—" if n is None else f"{significant(n / 1024)} KiB"


def ratio(value: float) -> str:
    """A speed-up or other ratio: "2.44x"."""
    return f"{significant(float(value))}x"
