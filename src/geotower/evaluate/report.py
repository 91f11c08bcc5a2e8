"""Side-by-side results: one table with geotower's row beside the baselines', a bar chart, and TensorBoard scalars.

Everything is written through :mod:`geotower.artifacts` (atomic), so a half-finished evaluation never leaves a
table that disagrees with its JSON.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geotower import artifacts
from geotower.errors import GeotowerWarning
from geotower.evaluate.metrics import METRIC_NAMES

METRICS_JSON = "metrics.json"
REPORT_MD = "report.md"
CHART_PNG = "metrics.png"
_LABELS = {"recall": "Recall", "ndcg": "NDCG", "hitrate": "HitRate", "precision": "Precision",
           "recall_trunc": "Recall (trunc.)"}


@dataclass
class ModelResult:
    """One row of the table: a model's metrics at K, how long it took to fit, and the params it used."""

    model: str  # short key: "geotower", "popular", "itemknn", "als", "bpr", "content_twotower"
    metrics: dict[str, float]  # METRIC_NAMES (+ "users"); empty when skipped
    fit_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # e.g. why a baseline was skipped
    label: str = ""  # display name; the key when empty

    @property
    def name(self) -> str:
        return self.label or self.model


def _fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def markdown_table(rows: list[ModelResult], k: int) -> str:
    """A GitHub-markdown table: one row per model, metrics at K with 4 decimals, fit time and params."""
    head = ["model", *(f"{_LABELS[m]}@{k}" for m in METRIC_NAMES), "fit s", "params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row.metrics:
            cells = [f"{row.metrics[m]:.4f}" for m in METRIC_NAMES]
        else:
            cells = ["-"] * len(METRIC_NAMES)
        fit = "-" if row.fit_s is None else f"{row.fit_s:.2f}"
        extra = _fmt_params(row.params) + (f" ({row.note})" if row.note else "")
        lines.append("| " + " | ".join([row.name, *cells, fit, extra.replace("|", "/")]) + " |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, rows: list[ModelResult], k: int, summary: dict[str, Any]) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md`` and ``metrics.png`` into ``out_dir``.

    Args:
        out_dir: the run's ``eval/`` folder.
        rows: geotower first, then the baselines.
        k: the cut-off the metrics were computed at.
        summary: protocol facts for the header (users, cold users, unknown ids, split, test source).

    Returns:
        {"json", "markdown", "chart"} -> written paths.
    """
    out = Path(out_dir)
    payload = {"k": k, **summary, "models": [asdict(r) for r in rows]}
    paths = {"json": artifacts.write_json(out / METRICS_JSON, payload)}
    header = [f"# Evaluation at K={k}", ""]
    header += [f"- {key.replace('_', ' ')}: {value}" for key, value in summary.items()]
    text = "\n".join(header) + "\n\n" + markdown_table(rows, k)
    paths["markdown"] = artifacts.write_text(out / REPORT_MD, text)
    paths["chart"] = write_chart(out / CHART_PNG, rows, k)
    return paths


def write_chart(path: str | Path, rows: list[ModelResult], k: int) -> Path:
    """Grouped bars of NDCG@K and Recall@K per model (PNG, Agg backend, atomic write)."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (a notebook's) alone

    shown = [r for r in rows if r.metrics]
    x = np.arange(len(shown))
    fig = Figure(figsize=(max(5.0, 1.3 * len(shown) + 2), 3.6))
    ax = fig.subplots()
    for offset, metric in ((-0.2, "ndcg"), (0.2, "recall")):
        ax.bar(x + offset, [r.metrics[metric] for r in shown], width=0.4, label=f"{_LABELS[metric]}@{k}")
    ax.set_xticks(x, [r.name for r in shown], rotation=20, ha="right")
    ax.set_ylabel("score")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return artifacts.write_bytes(path, buf.getvalue())


def log_tensorboard(tb_dir: str | Path, rows: list[ModelResult], k: int, step: int = 0) -> bool:
    """Add ``eval/<model>/<metric>`` scalars (at K) to the run's TensorBoard folder; False without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed (pip install tensorboard); eval metrics not logged there",
                      GeotowerWarning, stacklevel=2)
        return False
    writer = SummaryWriter(log_dir=str(tb_dir))
    try:
        for row in rows:
            for metric in METRIC_NAMES:
                if metric in row.metrics:
                    writer.add_scalar(f"eval/{row.model}/{metric}", row.metrics[metric], step)
    finally:
        writer.close()
    return True
