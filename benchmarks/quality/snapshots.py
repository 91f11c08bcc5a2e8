"""Snapshot ensembles against seed ensembles: can one refit trajectory stand in for the second member?

Why: a default run trains two refit members from scratch (8 of its 14 epoch-units on Singapore). Ensembling the
last two epochs of ONE refit trajectory (or averaging their weights) would halve that. This trains the refit models
exactly as ``train_run`` does (``member`` on every training row of the task's dataset folder, the epoch count that
early stopping picks there), keeps a copy after every epoch, and scores each combination on the validation part.

    python -m benchmarks.quality.snapshots --work /tmp/gq --datasets yelp ml100k foursquare

``--epochs`` gives the refit epoch count per data set (default: the best epochs of the default runs, 4 / 2 / 4);
``--seeds 1 2`` repeats the comparison with member seeds (s, s + 1) instead of (0, 1); the run's own seed stays 0,
because it also draws the split of data sets without timestamps (Singapore), which must stay the task's.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from geotower.config import resolve
from geotower.model.ensemble import TowerEnsemble
from geotower.model.towers import TwoTower
from geotower.pipeline.train import build_setup
from geotower.train.loop import fit, two_tower_loss
from geotower.train.sampling import train_data
from geotower.train.setup import SnapshotKeeper, TrainSetup, member, snapshot_members

from .geotower_runs import BASE, EARLY, embedding_scorer
from .peers import evaluate
from .tasks import Task, load_task

BEST_EPOCH = {"yelp": 4, "ml100k": 2, "foursquare": 4}


def trajectory(setup: TrainSetup, data: object, cfg: object, seed: int, epochs: int) -> list[TwoTower]:
    """A refit member trained ``epochs`` epochs; the model after each one (the product's snapshot members)."""
    model, optimizer, sampler = member(setup, data, cfg, seed)  # type: ignore[arg-type]
    keeper = SnapshotKeeper(epochs)
    fit(model, optimizer, sampler, two_tower_loss("softmax"), epochs, callbacks=[keeper], progress=False)
    return snapshot_members(model, keeper.kept)


def averaged(a: TwoTower, b: TwoTower) -> TwoTower:
    """The model whose float weights are the mean of ``a``'s and ``b``'s."""
    out = copy.deepcopy(b)
    mine = out.state_dict()
    for name, value in a.state_dict().items():
        if value.dtype.is_floating_point:
            mine[name].copy_((value + mine[name]) / 2)
    return out


def score(task: Task, setup: TrainSetup, data: object, model: TwoTower | TowerEnsemble) -> str:
    """Validation NDCG@10 / Recall@10 of ``model``'s embeddings (users with history = all their train positives)."""
    with torch.no_grad():
        item = model.all_item_embeddings().numpy()
        user = model.user_embeddings(data.hist_indptr, data.hist_items, None).numpy()  # type: ignore[attr-defined]
    scorer, _, _ = embedding_scorer(task, (setup.index.users, user), (setup.index.items, item))
    r = evaluate(task, scorer)
    return f"{r['ndcg']:.4f} / {r['recall']:.4f}"


def run(name: str, work: Path, epochs: int, seed: int) -> None:
    task = load_task(name, work / "data" / name)
    # the settings it compared (the eighth round's defaults); seed 0: the split (random per user without
    # timestamps) must stay the task's
    cfg = resolve(None, [*BASE, *EARLY])
    setup = build_setup(task.data_dir.resolve(), cfg)
    data = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    first = trajectory(setup, data, cfg, seed, epochs + 1)
    second = trajectory(setup, data, cfg, seed + 1, epochs)
    rows = [("seed s alone (members=1)", first[epochs - 1]),
            ("seeds s, s+1 (the defaults)", TowerEnsemble([first[epochs - 1], second[epochs - 1]])),
            ("seed s, epochs E and E+1", TowerEnsemble([first[epochs - 1], first[epochs]])),
            ("seed s epochs E and E+1, seed s+1 epoch E", TowerEnsemble([first[epochs - 1], first[epochs],
                                                                        second[epochs - 1]]))]
    if epochs >= 2:
        rows += [("seed s, epochs E-1 and E", TowerEnsemble([first[epochs - 2], first[epochs - 1]])),
                 ("seed s, weights of E-1 and E averaged", averaged(first[epochs - 2], first[epochs - 1])),
                 ("seed s, epochs E-1, E and E+1", TowerEnsemble(first[epochs - 2:epochs + 1])),
                 ("seeds s, s+1, epochs E-1 and E of each",  # the defaults' refit work: 2 x E epochs
                  TowerEnsemble([first[epochs - 2], first[epochs - 1], second[epochs - 2], second[epochs - 1]])),
                 ("seeds s, s+1, each the average of its E-1 and E weights",  # same work and embedding size
                  TowerEnsemble([averaged(first[epochs - 2], first[epochs - 1]),
                                 averaged(second[epochs - 2], second[epochs - 1])]))]
    for label, model in rows:
        model.eval()
        print(f"{name} E={epochs} s={seed} {label}: {score(task, setup, data, model)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gq"))
    parser.add_argument("--datasets", nargs="+", default=list(BEST_EPOCH))
    parser.add_argument("--epochs", type=int, nargs="*", help="refit epochs per data set, in --datasets order")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="first seed of each comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        for k, name in enumerate(args.datasets):
            run(name, args.work, args.epochs[k] if args.epochs else BEST_EPOCH[name], seed)


if __name__ == "__main__":
    main()
