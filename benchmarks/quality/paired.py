"""Paired test of geotower's default run against the strongest peer on the same validation users.

Run after ``benchmarks.quality.run`` (it reuses the stored rows and the geotower run folder)::

    python -m benchmarks.quality.paired --work /tmp/gq --datasets ml100k foursquare yelp

The best peer (by validation NDCG@10) is refitted with its stored setting; both are scored per user
(``geotower.evaluate.stats.per_user``) and compared with a paired t-test on NDCG@10 and Recall@10.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geotower.errors import GeotowerWarning
from geotower.evaluate import baselines as B
from geotower.evaluate.stats import paired_test, per_user

from . import peers
from .geotower_runs import bundle_scorer
from .run import best_rows, load_results
from .tasks import BUILDERS, Task, load_task


def peer_scorer(task: Task, row: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Refit one stored peer row and return its scorer."""
    p, label = dict(row["params"]), row["model"]
    names = {v: k for k, v in B.DISPLAY_NAMES.items()}
    if label in names:
        model = B._fit(B.make(names[label], p, seed=0, threads=1), names[label], task.train_pos, None, task.events)
        return model.score
    if label == "als":
        model, _ = peers.fit_als(task, p["factors"], p["reg"], p["alpha"], p["scheme"])
        return peers.score_table(task, model.user_factors, model.item_factors)
    if label == "popularity":
        pop = np.asarray((task.train_pos > 0).sum(axis=0)).ravel().astype(np.float32)
        return lambda users: np.broadcast_to(pop, (len(users), task.n_items))
    if label.startswith("plain"):
        *_, score = list(peers._plain_two_tower(task, peers.content_features(task), p["dim"], p["temperature"],
                                                p["epochs"], lr=p["lr"], every=p["epochs"]))[-1]
        return score
    if label.startswith("lightfm"):
        feats = peers.content_features(task)
        *_, score = list(peers._warp_epochs(task, feats, p, p["epochs"], p["epochs"], p["weighted"]))[-1]
        return score
    raise ValueError(f"no refit for peer {label!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--run", default="default", help="geotower run folder name under WORK/runs/<dataset>/")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=GeotowerWarning)
    for name in args.datasets:
        task = load_task(name, BUILDERS[name](args.work / "data" / name))
        rows = [r for r in load_results(args.work / "results", name) if not r["model"].startswith("geotower")]
        best = best_rows(rows)[0]
        ours, _ = bundle_scorer(task, args.work / "runs" / name / args.run)
        a = per_user(ours, task.users, task.relevant, task.seen, peers.K)
        b = per_user(peer_scorer(task, best), task.users, task.relevant, task.seen, peers.K)
        for metric in ("ndcg", "recall"):
            t = paired_test(getattr(a, metric), getattr(b, metric))
            print(f"{name}: geotower {args.run} vs {best['model']} ({metric}@10): {getattr(a, metric).mean():.4f} vs "
                  f"{getattr(b, metric).mean():.4f}, diff {t.diff:+.4f} ± {t.se:.4f}, t={t.t:.2f}, p={t.p_value:.3f}, "
                  f"n={t.n}", flush=True)


if __name__ == "__main__":
    main()
