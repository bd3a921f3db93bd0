"""Value checks shared by the settings of every layer: what counts as an integer or a
number in a config (a bool is neither, though Python says it is an int)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def is_int_at_least(value: Any, low: int) -> bool:
    """``value`` is an integer (Python or NumPy, not a bool) >= ``low``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= low


def is_finite_number(value: Any) -> bool:
    """``value`` is a finite real number (int, float or NumPy; not a bool, nan or inf)."""
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
