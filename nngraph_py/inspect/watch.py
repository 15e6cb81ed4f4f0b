"""Record parameter and gradient statistics every N steps of training, and plot them.

A small, dependency-free cousin of TensorBoard's histograms / Weights & Biases' ``wandb.watch``:
:class:`Watch` keeps, for every recorded step, the :class:`~nngraph_py.inspect.stats.ParamStats`
of each parameter and gradient and the ratio update-norm / weight-norm of that step; it writes
them as JSON and, with matplotlib installed (the ``examples`` extra), plots them as a PNG.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

from ..errors import NNGraphError
from ..module import Module
from .stats import ParamStats, snapshot, stats, update_ratio

__all__ = ["Watch", "MatplotlibMissing"]


class MatplotlibMissing(NNGraphError, ImportError):
    """Plotting needs matplotlib, which is an optional dependency."""


class Watch:
    """Record statistics of a model's parameters every ``every`` steps.

    (Weights & Biases: ``wandb.watch(model, log_freq=every)``; TensorBoard: histograms logged in
    the training loop; Keras: a ``Callback``. Lua had no equivalent: one printed norms by hand.)

    Call :meth:`step` once per training step, right after the optimizer's update (before the
    gradients are zeroed for the next step). On a recorded step it stores the statistics of every
    parameter and gradient, and the update ratio ``||w_t - w_{t-1}|| / ||w_{t-1}||`` of that
    step: the watch copies the parameters at the call just before (one copy, only then).

    Args:
        model: the module to watch (its ``named_parameters`` are read at each record, so views
            made later by ``get_parameters`` are followed).
        every: record every ``every`` steps (steps 0, every, 2*every...).
        grads: also record gradient statistics.
        ratios: also record update ratios (needs the copy described above).

    Attributes:
        history: one dict per recorded step: ``{"step": int, "params": {name: stats dict},
            "grads": {name: stats dict}, "update_ratio": {name: float}}``.

    Example:
        >>> watch = Watch(model, every=10)                      # doctest: +SKIP
        >>> for i in range(steps):                              # doctest: +SKIP
        ...     opt.zero_grad(); loss = train_step(); opt.step()
        ...     watch.step(i)
        >>> watch.plot("runs/stats.png"); watch.to_json("runs/stats.json")  # doctest: +SKIP
    """

    def __init__(self, model: Module, every: int = 1, grads: bool = True, ratios: bool = True):
        if not isinstance(model, Module):
            raise TypeError(f"Watch expects a module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.model = model
        self.every = every
        self.grads = grads
        self.ratios = ratios
        self.history: list[dict[str, Any]] = []
        self._before: tuple[int, dict[str, Any]] | None = None

    def due(self, step: int) -> bool:
        """Whether :meth:`step` records at ``step``."""
        return step % self.every == 0

    def step(self, step: int) -> bool:
        """Call after each optimizer step; records when ``step`` is a multiple of ``every``.

        Args:
            step: the index of the step just taken (0-based).

        Returns:
            True when this call recorded.
        """
        recorded = False
        if self.due(step):
            entry: dict[str, Any] = {
                "step": int(step),
                "params": {s.name: s.as_dict() for s in stats(self.model)},
            }
            if self.grads:
                entry["grads"] = {s.name: s.as_dict() for s in stats(self.model, kind="grad")}
            if self.ratios and self._before is not None and self._before[0] == step - 1:
                entry["update_ratio"] = update_ratio(self._before[1], self.model)
            self.history.append(entry)
            recorded = True
        # Keep a copy only when the next call records, to measure that one step's update.
        self._before = (step, snapshot(self.model)) if self.ratios and self.due(step + 1) else None
        return recorded

    # ----------------------------------------------------------------------------------------
    # Reading the record
    # ----------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The parameter names recorded, in ``named_parameters`` order."""
        seen: dict[str, None] = {}
        for entry in self.history:
            for name in entry["params"]:
                seen.setdefault(name, None)
        return list(seen)

    def series(self, name: str, field: str = "norm",
               kind: str = "param") -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one statistic of one parameter over the recorded steps.

        Args:
            name: the parameter's name.
            field: a :class:`ParamStats` field (``"norm"``, ``"mean"``, ``"nan"``...), or
                ``"update_ratio"``.
            kind: ``"param"`` or ``"grad"`` (ignored for ``"update_ratio"``).

        Returns:
            Two lists of the same length.
        """
        steps, values = [], []
        for entry in self.history:
            if field == "update_ratio":
                value = entry.get("update_ratio", {}).get(name)
            else:
                record = entry.get("grads" if kind == "grad" else "params", {}).get(name)
                value = None if record is None else record[field]
            if value is not None:
                steps.append(entry["step"])
                values.append(value)
        return steps, values

    def latest(self, kind: str = "param") -> list[ParamStats]:
        """The statistics of the last recorded step, as :class:`ParamStats`."""
        if not self.history:
            return []
        records = self.history[-1].get("grads" if kind == "grad" else "params", {})
        return [ParamStats(**{**r, "shape": tuple(r["shape"])}) for r in records.values()]

    def problems(self, low: float = 1e-5, high: float = 1e-1) -> list[str]:
        """Warnings from the record: NaN/Inf values, update ratios outside ``[low, high]``.

        Returns:
            One sentence per problem, first occurrence per parameter and kind.
        """
        found: dict[tuple[str, str], str] = {}
        for entry in self.history:
            step = entry["step"]
            for kind in ("params", "grads"):
                for name, r in entry.get(kind, {}).items():
                    if (r["nan"] or r["inf"]) and (name, kind) not in found:
                        found[(name, kind)] = (f"step {step}: {kind[:-1]} {name} has "
                                               f"{r['nan']} NaN and {r['inf']} Inf entries")
            for name, ratio in entry.get("update_ratio", {}).items():
                key = (name, "ratio")
                if key in found or ratio == 0.0:
                    continue
                if not (low <= ratio <= high):
                    found[key] = (f"step {step}: update/weight of {name} is {ratio:.3g}, outside "
                                  f"[{low:g}, {high:g}] (learning rate too "
                                  f"{'high' if ratio > high else 'low'}?)")
        return list(found.values())

    def to_json(self, path: str | None = None) -> str:
        """The record as JSON text (NaN and Infinity written as Python's json does).

        Args:
            path: when given, also write the text there.

        Returns:
            The JSON text.
        """
        text = json.dumps({"every": self.every, "history": self.history}, indent=1)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def grouped_series(self, names: Sequence[str], field: str = "norm",
                       kind: str = "param") -> tuple[list[int], list[float]]:
        """``(steps, values)`` of a statistic over several parameters taken as one.

        Norms combine as the norm of the parameters laid end to end (root of the sum of
        squares); an update ratio as ``||update|| / ||weights||`` of the whole group.
        """
        per_step: dict[int, list[tuple[float, float]]] = {}
        for name in names:
            steps, values = self.series(name, field, kind)
            weights = dict(zip(*self.series(name, "norm", "param")))
            for step, value in zip(steps, values):
                per_step.setdefault(step, []).append((value, weights.get(step, 1.0)))
        out_steps, out_values = [], []
        for step in sorted(per_step):
            pairs = per_step[step]
            if field == "update_ratio":
                total = math.sqrt(sum(w * w for _, w in pairs))
                value = math.sqrt(sum((r * w) ** 2 for r, w in pairs)) / total if total else 0.0
            elif field == "norm":
                value = math.sqrt(sum(v * v for v, _ in pairs))
            else:
                value = sum(v for v, _ in pairs) / len(pairs)
            out_steps.append(step)
            out_values.append(value)
        return out_steps, out_values

    def plot(self, path: str, names: Sequence[str] | None = None, group: str = "auto",
             top_k: int = 8) -> str:
        """Plot weight norms, gradient norms and update ratios over the steps to a PNG.

        A model has many parameters (an LSTM 128 x 2 classifier has 34): drawn one line each,
        they exhaust a colour cycle and the legend covers the data. So by default
        (``group="auto"``) parameters are grouped by layer (``lstm.layer1.i2h_input.weight``
        -> ``lstm.layer1``, ``classifier.weight`` -> ``classifier``) when there are more than
        ``top_k`` of them; then the ``top_k`` series with the largest last gradient norm (weight
        norm without gradients) are drawn in colour and named in a legend beside the panels,
        the others thin and grey. Uses matplotlib's Agg canvas directly (no pyplot, no change
        of the global backend).

        Args:
            path: the image file (``.png``; other matplotlib formats by extension).
            names: the parameters to draw (default: all).
            group: ``"auto"``, ``"layer"`` (always group) or ``"none"`` (one line each).
            top_k: how many series get a colour and a legend entry.

        Returns:
            ``path``.

        Raises:
            MatplotlibMissing: matplotlib is not installed.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise MatplotlibMissing(
                "Watch.plot needs matplotlib: pip install matplotlib (or the 'examples' extra, "
                "pip install 'nngraph_py[examples]'); the record itself is available without it "
                "through Watch.to_json()"
            ) from exc
        if not self.history:
            raise ValueError("nothing recorded yet: call watch.step(i) during training first")
        if group not in ("auto", "layer", "none"):
            raise ValueError(f"group must be 'auto', 'layer' or 'none', got {group!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        names = list(names) if names is not None else self.names()
        groups = self.groups(names, group, top_k)
        panels = [("param", "norm", "weight norm", False)]
        if self.grads:
            panels.append(("grad", "norm", "gradient norm", True))
        if self.ratios:
            panels.append(("param", "update_ratio", "update norm / weight norm", True))

        def last(label: str) -> float:
            kind = "grad" if self.grads else "param"
            values = self.grouped_series(groups[label], "norm", kind)[1]
            finite = [v for v in values if math.isfinite(v)]
            return finite[-1] if finite else -1.0

        ranked = sorted(groups, key=last, reverse=True)
        shown = set(ranked[:top_k])
        palette = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9"]  # C7 is grey: the rest
        colours = {label: palette[i % len(palette)] for i, label in enumerate(ranked[:top_k])}
        legend_width = 2.6 if groups else 0.0
        fig = Figure(figsize=(7 + legend_width, 2.6 * len(panels)), constrained_layout=True)
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (kind, field, title, log) in zip(axes, panels):
            for label in list(groups)[::-1]:  # coloured lines drawn last, on top
                steps, values = self.grouped_series(groups[label], field, kind)
                finite = [(s, v) for s, v in zip(steps, values)
                          if v is not None and math.isfinite(v) and (not log or v > 0)]
                if not finite:
                    continue
                xs, ys = [s for s, _ in finite], [v for _, v in finite]
                if label in shown:
                    ax.plot(xs, ys, marker=".", markersize=3, linewidth=1.2,
                            color=colours[label], label=label, zorder=3)
                else:
                    ax.plot(xs, ys, color="0.7", linewidth=0.7, zorder=1)
            if log and ax.get_lines():
                ax.set_yscale("log")
            if field == "update_ratio":
                ax.axhline(1e-3, color="grey", linestyle="--", linewidth=0.8)
            ax.set_title(title, fontsize=10)
            ax.grid(True, alpha=0.3)
        axes[-1].set_xlabel("step")
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            order = sorted(range(len(labels)), key=lambda i: ranked.index(labels[i]))
            handles, labels = [handles[i] for i in order], [labels[i] for i in order]
            hidden = len(groups) - len(shown)
            if hidden > 0:
                from matplotlib.lines import Line2D

                handles.append(Line2D([], [], color="0.7", linewidth=0.7))
                labels.append(f"{hidden} more (grey)")
            grouped = any(len(v) > 1 for v in groups.values())
            fig.legend(handles, labels, loc="outside right upper", fontsize=7,
                       title=("by layer, " if grouped else "") + f"top {len(shown)} by "
                             + ("gradient" if self.grads else "weight") + " norm",
                       title_fontsize=7)
        fig.savefig(path)
        return path

    @staticmethod
    def groups(names: Sequence[str], group: str = "auto",
               top_k: int = 8) -> dict[str, list[str]]:
        """``{label: parameter names}``: one group per parameter, or per layer (see
        :meth:`plot`)."""
        if group == "none" or (group == "auto" and len(names) <= top_k):
            return {name: [name] for name in names}
        out: dict[str, list[str]] = {}
        for name in names:
            parts = name.split(".")
            layer = ".".join(parts[:-2] if len(parts) >= 3 else parts[:-1]) or name
            out.setdefault(layer, []).append(name)
        return out

    def __repr__(self) -> str:
        return f"Watch(every={self.every}, {len(self.history)} records)"
