"""Losses on hand-computed values: equal scores give log 2 (two-way choices), masks and weights behave."""

from __future__ import annotations

import math

import pytest
import torch

from geotower.model.losses import bce_loss, bpr_loss, softmax_loss

LOG2 = math.log(2)


def test_bpr_equal_scores_is_log2_and_invalid_negatives_ignored() -> None:
    pos = torch.zeros(2)
    neg = torch.tensor([[0.0, -100.0], [0.0, 0.0]])  # row 0's second negative is masked out below
    valid = torch.tensor([[True, False], [True, True]])
    assert bpr_loss(pos, neg, torch.ones(2), valid).item() == pytest.approx(LOG2, rel=1e-6)
    assert bpr_loss(pos, neg, torch.ones(2)).item() < LOG2  # unmasked, the -100 negative lowers row 0


def test_bce_with_negatives_and_weights() -> None:
    # row 0: label 1 at logit 0 (log 2) + one negative at logit 0 (log 2) = 2 log 2; row 1: label 0 at 0 -> log 2,
    # its negative is invalid. Weights 3 and 1 -> (3 * 2 log 2 + 1 * log 2) / 4 = 7/4 log 2
    loss = bce_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0]), torch.zeros(2, 1),
                    torch.tensor([[True], [False]]))
    assert loss.item() == pytest.approx(1.75 * LOG2, rel=1e-6)


def test_softmax_known_answers() -> None:
    logits = torch.zeros(2, 3)
    target = torch.tensor([0, 1])
    w = torch.ones(2)
    assert softmax_loss(logits, target, w).item() == pytest.approx(math.log(3), rel=1e-6)
    # masking every non-target column leaves a one-way choice: loss 0
    invalid = torch.ones(2, 3, dtype=torch.bool)
    assert softmax_loss(logits, target, w, invalid=invalid).item() == pytest.approx(0.0, abs=1e-6)
    # logQ: subtracting log q = [0, 0, log 2] halves column 2's odds: -log(1 / (1 + 1 + 1/2)) = log 2.5
    log_q = torch.tensor([0.0, 0.0, LOG2])
    assert softmax_loss(logits, target, w, log_q=log_q).item() == pytest.approx(math.log(2.5), rel=1e-6)


def test_softmax_weight_scales_rows() -> None:
    logits = torch.tensor([[5.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([0, 0])
    only_second = softmax_loss(logits, target, torch.tensor([0.0, 1.0]))
    assert only_second.item() == pytest.approx(LOG2, rel=1e-6)
