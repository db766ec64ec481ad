"""The progress line of ``generate``: a tqdm bar when tqdm is installed, else a line on stderr every ~5%."""

from __future__ import annotations

import sys
import time


class Progress:
    """tqdm bar when available, else a line on stderr every ~5%."""

    def __init__(self, total: int):
        self.total, self.done, self._last = total, 0, 0.0
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, desc="generate", unit="call", file=sys.stderr, dynamic_ncols=True)

    def update(self, stats) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix(failed=stats.failed, tokens=stats.tokens, refresh=False)
            self._bar.update(1)
        elif self.done == self.total or self.done % max(1, self.total // 20) == 0 or time.time() - self._last > 10:
            self._last = time.time()
            print(f"generate: {self.done}/{self.total} calls, {stats.failed} failed, {stats.tokens} tokens",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
