"""Side-by-side results: one table with geotower's row beside the baselines', a bar chart, and TensorBoard scalars.

Everything is written through :mod:`geotower.artifacts` (atomic), so a half-finished evaluation never leaves a
table that disagrees with its JSON.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field, fields
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
    se: dict[str, float] = field(default_factory=dict)  # standard error of the per-user mean: "ndcg", "recall"
    # geotower's row: paired t-test against the best baseline by NDCG@K (same users): "vs", then per metric
    # "<m>_diff" (mean geotower - baseline), "<m>_se" (s.e. of that difference) and "<m>_p" (two-sided p-value)
    paired: dict[str, Any] = field(default_factory=dict)
    # per-user (ndcg, recall) arrays over the evaluated users, for the paired test; not written to metrics.json
    per_user: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_user"}

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
        cells = [metric_cell(row, m) for m in METRIC_NAMES]
        fit = "-" if row.fit_s is None else f"{row.fit_s:.2f}"
        extra = _fmt_params(row.params) + (f" ({row.note})" if row.note else "")
        lines.append("| " + " | ".join([row.name, *cells, fit, extra.replace("|", "/")]) + " |")
    tests = [paired_line(row) for row in rows if row.paired]
    return "\n".join(lines) + "\n" + "".join(f"\n{t}\n" for t in tests)


def metric_cell(row: ModelResult, metric: str) -> str:
    """``0.1234`` or ``0.1234 ± 0.0056`` (with a standard error); ``-`` for a skipped model."""
    if not row.metrics:
        return "-"
    se = row.se.get(metric)
    return f"{row.metrics[metric]:.4f}" + ("" if se is None or not np.isfinite(se) else f" ± {se:.4f}")


def paired_line(row: ModelResult) -> str:
    """One sentence: the paired difference to the best baseline per metric, its s.e. and p-value."""
    p = row.paired
    parts = [f"{_LABELS[m]} {p[m + '_diff']:+.4f} ± {p[m + '_se']:.4f} (p = {p[m + '_p']:.3g})"
             for m in ("ndcg", "recall") if m + "_diff" in p]
    return f"Paired t-test, {row.name} minus the best baseline ({p['vs']}), over {p['n']} users: " + "; ".join(parts)


def write_report(out_dir: str | Path, rows: list[ModelResult], k: int, summary: dict[str, Any],
                 bands: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, ``metrics.png`` and the self-contained ``report.html``.

    Args:
        out_dir: the run's ``eval/`` folder.
        rows: geotower first, then the baselines.
        k: the cut-off the metrics were computed at.
        summary: protocol facts for the header (users, cold users, unknown ids, split, test source).
        bands: geotower's metrics by user activity / item popularity / distance
            (:func:`geotower.evaluate.bands.breakdowns`).

    Returns:
        {"json", "markdown", "chart", "html"} -> written paths.
    """
    out = Path(out_dir)
    payload = {"k": k, **summary, "models": [r.to_json() for r in rows], "breakdowns": bands or []}
    paths = {"json": artifacts.write_json(out / METRICS_JSON, payload)}
    header = [f"# Evaluation at K={k}", ""]
    header += [f"- {key.replace('_', ' ')}: {value}" for key, value in summary.items()]
    text = "\n".join(header) + "\n\n" + markdown_table(rows, k)
    if bands:
        text += ("\n## geotower by band (mean +- standard error)\n\n| by | band | n | mean | s.e. | unit |\n"
                 "|---|---|---|---|---|---|\n")
        text += "".join(f"| {b['by']} | {b['band']} | {b['n']} | {b['mean']:.4f} | {b['se']:.4f} | {b['unit']} |"
                        "\n" for b in bands)
    paths["markdown"] = artifacts.write_text(out / REPORT_MD, text)
    paths["chart"] = write_chart(out / CHART_PNG, rows, k)
    paths["html"] = write_html(out / REPORT_HTML, rows, k, summary, bands)
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


REPORT_HTML = "report.html"


def _png(fig: Any) -> str:
    import base64

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def breakdown_chart(rows: list[dict[str, Any]]) -> Any:
    """One panel per breakdown: bars with +-1 standard error."""
    from matplotlib.figure import Figure

    groups = list(dict.fromkeys(r["by"] for r in rows))
    fig = Figure(figsize=(4.2 * max(len(groups), 1), 3.4))
    axes = np.atleast_1d(fig.subplots(1, max(len(groups), 1)))
    for ax, g in zip(axes, groups, strict=False):
        sub = [r for r in rows if r["by"] == g]
        x = np.arange(len(sub))
        ax.bar(x, [r["mean"] for r in sub], yerr=[0 if np.isnan(r["se"]) else r["se"] for r in sub], capsize=4,
               color="#4c78a8")
        ax.set_xticks(x, [f"{r['band']}\n(n={r['n']})" for r in sub], fontsize=7)
        ax.set_title(f"by {g}", fontsize=10)
        ax.set_ylabel(sub[0]["unit"], fontsize=8)
    fig.tight_layout()
    return fig


def write_html(path: str | Path, rows: list[ModelResult], k: int, summary: dict[str, Any],
               bands: list[dict[str, Any]] | None = None) -> Path:
    """A self-contained report: the comparison table and charts inlined as base64 PNGs (opens offline)."""
    import html

    from matplotlib.figure import Figure

    shown = [r for r in rows if r.metrics]
    fig = Figure(figsize=(max(5.0, 1.3 * len(shown) + 2), 3.6))
    ax = fig.subplots()
    x = np.arange(len(shown))
    for offset, metric in ((-0.2, "ndcg"), (0.2, "recall")):
        ax.bar(x + offset, [r.metrics[metric] for r in shown], width=0.4, label=f"{_LABELS[metric]}@{k}")
    ax.set_xticks(x, [r.name for r in shown], rotation=20, ha="right")
    ax.legend()
    fig.tight_layout()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["model", *(f"{_LABELS[m]}@{k}" for m in METRIC_NAMES),
                                                             "fit s", "params"])
    body = ""
    for r in rows:
        cells = [f"{r.metrics[m]:.4f}" for m in METRIC_NAMES] if r.metrics else ["-"] * len(METRIC_NAMES)
        fit = "-" if r.fit_s is None else f"{r.fit_s:.2f}"
        body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in [r.name, *cells, fit,
                                                                       _fmt_params(r.params) + r.note]) + "</tr>"
    facts = "".join(f"<li>{html.escape(str(key).replace('_', ' '))}: {html.escape(str(v))}</li>"
                    for key, v in summary.items())
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>geotower evaluation at K={k}</title>",
             "<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1100px}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:"
             "left}img{max-width:100%}</style></head><body>",
             f"<h1>Evaluation at K={k}</h1><ul>{facts}</ul>",
             f"<table id='models'><tr>{head}</tr>{body}</table>",
             f"<h2>Models side by side</h2><img id='chart' alt='NDCG and recall per model' "
             f"src='data:image/png;base64,{_png(fig)}'>"]
    if bands:
        brow = "".join(f"<tr><td>{html.escape(b['by'])}</td><td>{html.escape(b['band'])}</td><td>{b['n']}</td>"
                       f"<td>{b['mean']:.4f}</td><td>{b['se']:.4f}</td><td>{html.escape(b['unit'])}</td></tr>"
                       for b in bands)
        parts += ["<h2>geotower by user activity, item popularity and distance from home</h2>",
                  "<p>Bands with their standard errors (per user for activity, per held-out visit otherwise); the "
                  "home area is the mean position of the user's training places.</p>",
                  f"<img id='breakdown' alt='breakdowns' src='data:image/png;base64,{_png(breakdown_chart(bands))}'>",
                  "<table id='bands'><tr><th>by</th><th>band</th><th>n</th><th>mean</th><th>s.e.</th><th>unit</th>"
                  f"</tr>{brow}</table>"]
    parts.append("</body></html>")
    return artifacts.write_text(path, "".join(parts))
