"""Fixed epoch budgets against early stopping + refit, over several pairs of member seeds.

Why: a default run spends most of its time choosing the epoch count (early stopping on 90 % of the rows, with
``train.patience`` epochs past the best) and then refitting both members on all rows. A fixed budget with the
learning rate decayed to zero trains only the members. One seed per variant cannot tell them apart (the defaults'
validation NDCG on Singapore moves by 0.003 between member seeds, docs/quality.md), so every variant here is trained
with member seeds (s, s + 1) for each given s and the mean is printed with the spread.

    python -m benchmarks.quality.budget --work /tmp/gq --datasets yelp ml100k foursquare --seeds 0 1 2 3 4

Rows: ``refit E`` is what the defaults train after early stopping (its chosen epoch count E per data set,
``--refit-epochs``, constant learning rate); ``budget B`` trains B epochs with linear decay; each ``--variant``
(space-separated ``--set`` overrides, e.g. ``"train.epochs=3 train.lr=0.02"``) adds a row that trains
``train.epochs`` epochs with its settings (``train.lr_decay`` as they say). Every row starts from the settings of
early stopping + refit (``geotower_runs.EARLY``: weight decay 1e-5, no decay), the defaults before this comparison
chose the budget; the defaults now are ``"train.early_stopping=false train.lr_decay=true train.epochs=3
train.weight_decay=1e-3"``. The run's own seed stays 0: it also
draws the split of data sets without timestamps (Singapore), which must stay the task's.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from geotower.config import RunConfig, replace, resolve
from geotower.model.ensemble import TowerEnsemble
from geotower.pipeline.train import build_setup
from geotower.train.sampling import train_data
from geotower.train.setup import train_fixed

from .geotower_runs import BASE, EARLY
from .snapshots import score
from .tasks import load_task

REFIT_EPOCHS = {"yelp": 4, "ml100k": 2, "foursquare": 4}


def variants(cfg: RunConfig, args: argparse.Namespace, refit: int) -> list[tuple[str, RunConfig]]:
    """(label, configuration) of every row; ``train.epochs`` and ``train.lr_decay`` say how each trains."""
    rows = [(f"refit {refit} (the defaults' members)", replace(cfg, "train", epochs=refit, lr_decay=False))] \
        if args.refit else []
    rows += [(f"budget {b}, decay", replace(cfg, "train", epochs=b, lr_decay=True)) for b in args.budgets]
    rows += [(v, resolve(None, [*BASE, *EARLY, *v.split()])) for v in args.variant]
    return rows


def run(name: str, work: Path, args: argparse.Namespace) -> None:
    task = load_task(name, work / "data" / name)
    cfg = resolve(None, [*BASE, *EARLY])  # every row starts from the early-stopping settings (as measured)
    setup = build_setup(task.data_dir.resolve(), cfg)
    data = train_data(setup.index, setup.rows.train, cfg, setup.neighbours)
    refit = args.refit_epochs[args.datasets.index(name)] if args.refit_epochs else REFIT_EPOCHS[name]
    for label, run_cfg in variants(cfg, args, refit):
        own, own_data = setup, data
        if run_cfg.model != cfg.model or run_cfg.features != cfg.features or run_cfg.train.batch_size != \
                cfg.train.batch_size:  # the tower spec and the batches follow these
            own = build_setup(task.data_dir.resolve(), run_cfg)
            own_data = train_data(own.index, own.rows.train, run_cfg, own.neighbours)
        got = []
        for s in args.seeds:
            seeds = [s + m for m in range(run_cfg.model.members)]  # trained as a default run trains them
            pair = TowerEnsemble(train_fixed(own, own_data, run_cfg, run_cfg.train.epochs, seeds=seeds, progress=False))
            pair.eval()
            got.append(score(task, own, own_data, pair))
            print(f"{name} s={s} {label}: {got[-1]}", flush=True)
        ndcg = [float(g.split(" / ")[0]) for g in got]
        recall = [float(g.split(" / ")[1]) for g in got]
        spread = f"{min(ndcg):.4f}-{max(ndcg):.4f}"
        print(f"MEAN {name} {label}: ndcg={statistics.mean(ndcg):.4f} ({spread}) "
              f"recall={statistics.mean(recall):.4f} over {len(got)} seed pairs", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gq"))
    parser.add_argument("--datasets", nargs="+", default=list(REFIT_EPOCHS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="*", default=[2, 3, 4])
    parser.add_argument("--variant", action="append", default=[], help="space-separated overrides of one more row")
    parser.add_argument("--no-refit", dest="refit", action="store_false", help="leave out the defaults' row")
    parser.add_argument("--refit-epochs", type=int, nargs="*", help="early stopping's epochs, in --datasets order")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.datasets:
        run(name, args.work, args)


if __name__ == "__main__":
    main()
