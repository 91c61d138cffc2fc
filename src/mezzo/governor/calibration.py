"""Learn how far a model's reported input usage runs above mezzo's estimate, per route.

Where mezzo lacks a model's tokenizer its estimate can be low; holding too little lets a
call's real usage pass its reservation. Each result reports the real input count, so the
hold scales by the largest recent ratio of reported to estimated (never below 1).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque


class InputCalibration:
    def __init__(self, window: int = 50) -> None:
        self._ratios: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))

    def observe(self, key: str, estimated: int, reported: int) -> None:
        if estimated > 0 and reported > 0:
            self._ratios[key].append(reported / estimated)

    def factor(self, key: str) -> float:
        ratios = self._ratios.get(key)
        return max(1.0, max(ratios)) if ratios else 1.0

    def scale(self, key: str, estimated: int) -> int:
        return math.ceil(estimated * self.factor(key))
