"""Time-stamped samples of one sensor stream, for matching streams by stamp (camera sync, episode steps)."""

from __future__ import annotations

import bisect


class StreamBuffer:
    """Samples of one stream sorted by stamp (the last ``maxlen``, or all with ``None``); nearest-stamp lookup."""

    def __init__(self, maxlen: int | None = 64) -> None:
        self.maxlen = maxlen
        self._stamps: list[float] = []
        self._values: list[object] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp_s: float, value: object) -> None:
        i = bisect.bisect(self._stamps, stamp_s)  # best-effort transport can reorder: insert sorted
        self._stamps.insert(i, stamp_s)
        self._values.insert(i, value)
        if self.maxlen is not None and len(self._stamps) > 2 * self.maxlen:  # trim in batches: amortised O(1)
            del self._stamps[: -self.maxlen], self._values[: -self.maxlen]

    def nearest(self, t_s: float, tolerance_s: float) -> tuple[float, object] | None:
        i = bisect.bisect(self._stamps, t_s)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        if not candidates:
            return None
        j = min(candidates, key=lambda k: abs(self._stamps[k] - t_s))
        if abs(self._stamps[j] - t_s) > tolerance_s:
            return None
        return self._stamps[j], self._values[j]

    def latest_stamp(self) -> float | None:
        return self._stamps[-1] if self._stamps else None
