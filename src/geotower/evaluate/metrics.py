"""Top-K ranking metrics over the whole catalogue: the public names of the three metric modules in one place.

:mod:`geotower.evaluate.topk` (selection, ties to the lower item index), :mod:`geotower.evaluate.formulas` (Recall,
NDCG, HitRate, Precision at K) and :mod:`geotower.evaluate.scoring` (many users in batches; FAISS for embeddings).
"""

from __future__ import annotations

from geotower.evaluate.formulas import METRIC_NAMES, ground_truth, hit_matrix, topk_metrics
from geotower.evaluate.scoring import evaluate_embeddings, evaluate_scorer
from geotower.evaluate.topk import block_batch_size, check_k, rank_topk

__all__ = ["METRIC_NAMES", "block_batch_size", "check_k", "evaluate_embeddings", "evaluate_scorer", "ground_truth",
           "hit_matrix", "rank_topk", "topk_metrics"]
