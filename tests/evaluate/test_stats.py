"""Standard errors and paired tests on per-user metrics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats as st

from geotower.evaluate import stats as S
from geotower.evaluate.metrics import evaluate_scorer


def test_per_user_means_equal_evaluate_scorer() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    relevant = sp.csr_matrix((rng.random((n_users, n_items)) < 0.1).astype(np.float32))
    seen = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2).astype(np.float32))
    scores = rng.random((n_users, n_items)).astype(np.float32)
    fn = lambda b: scores[b]  # noqa: E731
    pu = S.per_user(fn, np.arange(n_users), relevant, seen, 5)
    ref = evaluate_scorer(fn, np.arange(n_users), relevant, seen, 5)
    assert len(pu.users) == ref["users"] > 0
    assert pu.ndcg.mean() == pytest.approx(ref["ndcg"]) and pu.recall.mean() == pytest.approx(ref["recall"])


def test_paired_test_matches_scipy_and_detects_a_shift() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(200)
    a = b + 0.05 + 0.01 * rng.standard_normal(200)
    res = S.paired_test(a, b)
    ref = st.ttest_rel(a, b)
    assert res.t == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue)
    assert res.diff == pytest.approx(0.05, abs=0.01) and res.p_value < 1e-6 and res.n == 200
    same = S.paired_test(b, b)
    assert same.diff == 0.0 and same.p_value == 1.0
    assert S.standard_error(np.array([1.0, 3.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        S.paired_test(a, b[:3])
