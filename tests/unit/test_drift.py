"""Drift statistics (pure): quiet on the reference distribution, loud on a shifted one."""
from __future__ import annotations

import numpy as np

from tickcast import drift, model_io


def _reference(rng, n=20_000):
    X = np.column_stack([rng.normal(0, 1, n), rng.exponential(1.0, n)])
    return model_io.reference_distribution(X, ["a", "b"], sample=2000)


def test_same_distribution_is_quiet_and_a_shift_is_flagged():
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    same = {"a": rng.normal(0, 1, 1440), "b": rng.exponential(1.0, 1440)}
    quiet = {r["feature"]: r for r in drift.report(ref, same, threshold=0.2)}
    assert all(not r["drifted"] and r["psi"] < 0.05 and r["ks_pvalue"] > 0.001 for r in quiet.values())
    shifted = {"a": rng.normal(0.5, 1, 1440), "b": rng.exponential(2.0, 1440)}
    loud = {r["feature"]: r for r in drift.report(ref, shifted, threshold=0.2)}
    assert all(r["drifted"] and r["psi"] > 0.2 and r["ks_pvalue"] < 1e-6 for r in loud.values())
    assert loud["a"]["n"] == 1440


def test_psi_matches_its_definition_and_survives_empty_bins():
    ref = {"edges": [0.0, 1.0, 2.0, 3.0], "shares": [0.5, 0.25, 0.25], "sample": [0.5, 1.5, 2.5]}
    live = np.array([0.5, 0.5, 1.5, 2.5, -7.0, 9.0])           # outer values fall in the outer bins
    cur = np.array([3 / 6, 1 / 6, 2 / 6])
    exp = np.sum((cur - ref["shares"]) * np.log(cur / np.array(ref["shares"])))
    assert abs(drift.psi(ref, live) - exp) < 1e-12
    assert np.isfinite(drift.psi(ref, np.array([0.1, 0.2])))   # two bins empty: floored, finite
    assert np.isnan(drift.psi(ref, np.array([])))
