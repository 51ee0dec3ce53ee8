"""The capacity forecast: a least-squares line through recent utilisation samples, extended to 1.0.

Pure arithmetic on (time, ratio) points, used by capacity/tracker.py whenever a series keeps a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def seconds_to_full(points: Sequence[tuple[float, float]], min_points: int = 3) -> float:
    """Seconds from the newest point until the fitted line reaches ratio 1.0.

    NaN when there are too few points, the samples span no time, or the trend is flat or falling
    (such a resource never fills). 0.0 when the fitted line is already at or above 1.0.
    """
    n = len(points)
    if n < min_points or n < 2:
        return math.nan
    # Times relative to the first point: epoch seconds squared would lose the slope to rounding.
    t0 = points[0][0]
    mean_t = sum(t - t0 for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((t - t0 - mean_t) ** 2 for t, _ in points)
    if sxx <= 0.0:
        return math.nan
    sxy = sum((t - t0 - mean_t) * (y - mean_y) for t, y in points)
    slope = sxy / sxx  # ratio per second
    if slope <= 1e-15:
        return math.nan
    intercept = mean_y - slope * mean_t
    t_full = (1.0 - intercept) / slope
    t_last = points[-1][0] - t0
    return max(0.0, t_full - t_last)
