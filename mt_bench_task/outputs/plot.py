"""The per-category radar plot of the MT-bench paper: one polygon per model, one axis per
category of the bench, scale 0-10."""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mt_bench_task.core.results import Results


def radar_plot(results: Results, out: Path, title_note: str | None = None,
               bench_name: str = "mt_bench", dashed: Collection[str] = ()) -> Path:
    """Write a PNG of single-mode results; axes in the bench's category order
    (`Results.categories`), then any other scored category; models named in `dashed` (official
    reference models) are drawn dashed and unfilled."""
    import matplotlib

    from mt_bench_task.core.bench import order_categories

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt
    import numpy as np

    if not results.single:
        raise ValueError("the radar plot needs single-mode (1-10) scores")
    order = results.categories
    cats = order_categories({c for _, m in results.ranked() for c in m.categories}, order)
    if len(cats) < 3:  # a polygon needs 3 axes: show the bench's other categories (at 0)
        cats = order_categories(set(cats) | set(order), order)
    with plt.rc_context({"text.usetex": False}):  # names are not LaTeX: a user rc must not make them
        angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False).tolist()
        fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"polar": True})
        for name, m in results.ranked():
            values = [m.categories.get(c, 0.0) for c in cats]
            ax.plot(angles + angles[:1], values + values[:1], linewidth=2,
                    linestyle="--" if name in dashed else "-",
                    label=literal(f"{name} ({m.average:.2f})"))
            if name not in dashed:
                ax.fill(angles + angles[:1], values + values[:1], alpha=0.1)
        ax.set_xticks(angles)
        ax.set_xticklabels([literal(c.capitalize()) for c in cats], fontsize=12)
        ax.tick_params(axis="x", pad=12)  # keep labels off the outer ring
        ax.set_ylim(0, 10)
        ax.set_yticks([2, 4, 6, 8, 10])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=9, frameon=False)
        title = ("MT-bench" if bench_name == "mt_bench" else bench_name) + " score per category"
        ax.set_title(literal(title + (f"\n({title_note})" if title_note else "")), pad=40)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return out


def literal(text: str) -> str:
    """`text` drawn as written: matplotlib reads "$...$" as math (a model id with "$" in it
    would be typeset, or fail to parse and crash the plot)."""
    return text.replace("$", r"\$")
