"""Retrieval losses as pure tensor functions: BCE, BPR and in-batch sampled softmax with logQ correction.

Every loss takes per-example confidence ``weight`` (b,) and returns the weighted mean, so the ``weight`` column of
the interactions scales the loss. Invalid negatives (a sampled item that is one of the user's train positives) are
passed in as a boolean mask and never count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _weighted_mean(per_row: Tensor, weight: Tensor) -> Tensor:
    return (per_row * weight).sum() / weight.sum().clamp_min(1e-12)


def bce_loss(pos_logits: Tensor, labels: Tensor, weight: Tensor, neg_logits: Tensor | None = None,
             neg_valid: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on labelled rows plus sampled negatives (label 0).

    Args:
        pos_logits: (b,) scores of the interaction rows.
        labels: (b,) 1.0 for positives (centered rating > threshold), 0.0 for rated negatives.
        weight: (b,) confidence weights.
        neg_logits: (b, n) scores of sampled negatives, or None.
        neg_valid: (b, n) bool, False where a sample is one of the user's positives.
    """
    per_row = F.binary_cross_entropy_with_logits(pos_logits, labels, reduction="none")  # (b,)
    if neg_logits is not None:
        valid = torch.ones_like(neg_logits, dtype=torch.bool) if neg_valid is None else neg_valid
        neg = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits), reduction="none")
        per_row = per_row + (neg * valid).sum(dim=1)
    return _weighted_mean(per_row, weight)


def bpr_loss(pos_logits: Tensor, neg_logits: Tensor, weight: Tensor, neg_valid: Tensor | None = None) -> Tensor:
    """Bayesian personalised ranking: ``-log sigmoid(s_pos - s_neg)`` averaged over valid negatives.

    Args:
        pos_logits: (b,) positive scores.
        neg_logits: (b, n) negative scores.
        weight: (b,) confidence weights.
        neg_valid: (b, n) bool mask of usable negatives.
    """
    valid = torch.ones_like(neg_logits, dtype=torch.bool) if neg_valid is None else neg_valid
    pair = -F.logsigmoid(pos_logits[:, None] - neg_logits)  # (b, n)
    per_row = (pair * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)
    return _weighted_mean(per_row, weight)


def softmax_loss(logits: Tensor, target: Tensor, weight: Tensor, log_q: Tensor | None = None,
                 invalid: Tensor | None = None, target_log_q: Tensor | None = None) -> Tensor:
    """Sampled softmax over candidate columns (in-batch items plus extra negatives).

    Args:
        logits: (b, c) scores of every user row against every candidate column (already / temperature).
        target: (b,) column index of each row's positive.
        weight: (b,) confidence weights.
        log_q: (c,) log expected sampling count of each column (logQ correction), or None.
        invalid: (b, c) bool, True where a column is another positive of the row's user (masked out);
            the target column is never masked.
        target_log_q: (b,) the log_q of each row's target column instead of ``log_q[target]`` (distinct columns
            standing for several copies: see ``BatchSampler._column_log_q``), or None.
    """
    rows = torch.arange(len(target), device=logits.device)
    if log_q is not None:
        logits = logits - log_q[None, :]  # a new tensor: the in-place fix below leaves the inputs alone
        if target_log_q is not None:
            logits[rows, target] += log_q[target] - target_log_q
    if invalid is not None:
        invalid = invalid.clone()
        invalid[rows, target] = False
        logits = logits.masked_fill(invalid, float("-inf"))
    per_row = F.cross_entropy(logits, target, reduction="none")  # (b,)
    return _weighted_mean(per_row, weight)
