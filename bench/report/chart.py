"""docs/benchmarks.png: each engine's modes, and the orchestrator's own cost, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.model import Results
from bench.report import figures as f
from bench.report.tables import OVERHEAD_TARGET, STARTUP_TARGET, WARM_TARGET


def _modes_panel(axis: Any, results: Results, top: float) -> None:
    """Stacked medians (pip step, export, the rest) with min-max, one bar per mode."""
    modes = [results.modes[k] for k in f.MODE_ORDER]
    medians = [m.median() or 0.0 for m in modes]
    steps = [m.median("install_step") or 0.0 for m in modes]
    exports = [m.median("export_step") or 0.0 for m in modes]
    rests = [max(t - a - b, 0.0) for t, a, b in zip(medians, steps, exports, strict=True)]
    lows = [med - min(m.times or [med]) for m, med in zip(modes, medians, strict=True)]
    highs = [max(m.times or [med]) - med for m, med in zip(modes, medians, strict=True)]
    x = list(range(len(modes)))
    axis.bar(x, steps, color="#1f77b4", label="pip step (BuildKit)")
    axis.bar(x, exports, bottom=steps, color="#aec7e8", label="export to image")
    tops = [a + b for a, b in zip(steps, exports, strict=True)]
    axis.bar(x, rests, bottom=tops, color="#ff7f0e", label="rest: CLI, orchestrate, solve")
    axis.errorbar(x, medians, yerr=[lows, highs], fmt="none", ecolor="black", capsize=3)
    for index, mode in enumerate(modes):
        axis.annotate(
            f"{medians[index]:.1f} s\n{(f.files_bytes(mode) or 0) / f.MB:.0f} MB up",
            (index, medians[index] + highs[index]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    floor = results.modes["floor"].median()
    if floor:
        axis.axhline(
            floor * WARM_TARGET,
            color="black",
            linestyle="--",
            linewidth=0.8,
            label=f"floor x{WARM_TARGET}",
        )
    axis.set_xticks(x, [k.replace(" ", "\n") for k in f.MODE_ORDER], fontsize=8)
    axis.set_ylim(0, top)
    facts = results.facts
    axis.set_title(
        f"{results.engine}: Docker {facts['engine']}, buildx {facts['buildx']}", fontsize=9
    )
    axis.legend(loc="upper left", fontsize=7)


def _cost_panel(axis: Any, runs: list[Results]) -> None:
    """Overhead over the raw line and start-up, per engine, against their targets."""
    width = 0.38
    for offset, (label, value, target, color) in enumerate(
        (
            ("overhead", f.overhead, OVERHEAD_TARGET, "#ff7f0e"),
            ("start-up", f.startup, STARTUP_TARGET, "#2ca02c"),
        )
    ):
        xs = [i + (offset - 0.5) * width for i in range(len(runs))]
        heights = [value(r) or 0.0 for r in runs]
        bars = axis.bar(xs, heights, width, color=color, label=f"{label} (target {target} s)")
        for bar, height in zip(bars, heights, strict=True):
            axis.annotate(
                f"{height:.3f}",
                (bar.get_x() + bar.get_width() / 2, height),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
        for x in xs:
            axis.hlines(target, x - width / 2, x + width / 2, colors="black", linewidth=0.8)
    axis.set_xticks(range(len(runs)), [r.engine for r in runs])
    highest = max([OVERHEAD_TARGET, *(f.overhead(r) or 0.0 for r in runs)])
    axis.set_ylim(0, highest * 1.45)
    axis.set_ylabel("seconds (median)")
    axis.set_title("orchestrate's own cost", fontsize=9)
    axis.legend(loc="upper left", fontsize=7)


def chart(runs: list[Results], path: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only the chart needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the Agg backend

    figure, axes = plt.subplots(
        1,
        len(runs) + 1,
        figsize=(5.2 * len(runs) + 3, 4.8),
        gridspec_kw={"width_ratios": [3] * len(runs) + [1.4]},
    )
    top = 1.35 * max(max(r.modes[k].times or [0.0]) for r in runs for k in f.MODE_ORDER)
    for axis, results in zip(axes, runs, strict=False):
        _modes_panel(axis, results, top)
    axes[0].set_ylabel("seconds to rebuild the install layer (median, min-max)")
    _cost_panel(axes[-1], runs)
    first = runs[0].facts
    figure.suptitle(
        f"numpy + pandas ({first['total_bytes'] / f.MB:.0f} MB), upstream at {first['rate']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
