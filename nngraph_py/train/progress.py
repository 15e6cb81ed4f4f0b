"""Progress of a training run: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns, which in a log file (``python train.py > log``, CI,
``nohup``) becomes one enormous line. So :class:`Progress` draws the bar only when its stream is
a terminal (or when asked with ``mode="bar"``) and otherwise prints a complete line every
``log_every`` steps: step, epoch, smoothed loss, throughput and the time left.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "format_value", "format_duration"]


def format_value(value: Any) -> str:
    """A metric for a log line: 4 significant digits, thousands separated above 10^4."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"`` (tqdm's style)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Shows the loss, samples per second and the time left while :func:`fit` runs.

    Args:
        mode: ``True`` (a bar on a terminal, plain lines otherwise), ``"bar"`` (always a bar),
            ``"lines"`` (always plain lines), or ``False`` (evaluation lines only).
        total: steps in the whole run, or ``None`` when unknown.
        initial: steps already done (a resumed run).
        desc: the label.
        log_every: steps between plain lines (0: about 20 lines over the run).
        stream: where the bar and lines go (default: standard error for the bar, standard
            output for lines, as tqdm and ``print``).
    """

    def __init__(self, mode: Any = True, total: int | None = None, initial: int = 0,
                 desc: str = "train", log_every: int = 0, stream: TextIO | None = None):
        if mode not in (True, False, "bar", "lines"):
            raise ValueError(f"Progress: mode must be True, False, 'bar' or 'lines', got {mode!r}")
        self.total = total
        self.desc = desc
        self.done = initial
        self._start_done = initial
        self._started = time.perf_counter()
        self._loss: float | None = None
        self._rate: float | None = None
        self._bar: Any = None
        self._stream = stream
        bar_stream = stream if stream is not None else sys.stderr
        if mode is True:
            mode = "bar" if _isatty(bar_stream) else "lines"
        self.mode = mode
        if mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is an extra: fall back to lines
                self.mode = "lines"
            else:
                self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                                 file=bar_stream, desc=desc)
        if log_every <= 0:
            log_every = max(1, (total or 200) // 20)
        self.log_every = log_every

    def set_description(self, desc: str) -> None:
        """Change the label (``"train epoch 2/10"``)."""
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def update(self, loss: float, samples: int, seconds: float) -> None:
        """Record one step: its loss, its batch size and how long it took."""
        self.done += 1
        if math.isfinite(loss):
            self._loss = loss if self._loss is None else 0.95 * self._loss + 0.05 * loss
        speed = samples / max(seconds, 1e-9)
        self._rate = speed if self._rate is None else 0.9 * self._rate + 0.1 * speed
        if self._bar is not None:
            self._bar.set_postfix({"loss": format_value(self._loss), "samples/s":
                                   f"{self._rate:,.0f}"}, refresh=False)
            self._bar.update(1)
        elif self.mode == "lines" and (self.done % self.log_every == 0 or self.done == self.total):
            self.write(self.line())

    def line(self) -> str:
        """The plain progress line: step, loss, throughput, elapsed and time left."""
        elapsed = time.perf_counter() - self._started
        steps = self.done - self._start_done
        parts = [f"[{self.desc}] step {self.done}" + (f"/{self.total}" if self.total else "")]
        if self._loss is not None:
            parts.append(f"loss {format_value(self._loss)}")
        if self._rate is not None:
            parts.append(f"{self._rate:,.0f} samples/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.total and steps:
            left = (self.total - self.done) * elapsed / steps
            parts.append(f"left {format_duration(left)}")
        return "  ".join(parts)

    def write(self, text: str) -> None:
        """Print a line without breaking the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self._bar.fp)
        else:
            print(text, file=self._stream if self._stream is not None else sys.stdout, flush=True)

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
