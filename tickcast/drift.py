"""Feature drift against a model's training reference: PSI over the training deciles and the
two-sample Kolmogorov-Smirnov test against the training sample (pure numpy/scipy)."""
from __future__ import annotations

import numpy as np

EPS = 1e-4     # share floor: an empty bin must not make PSI infinite


def psi(reference: dict, live: np.ndarray) -> float:
    """Population stability index of `live` over the reference's decile bins (outer bins open)."""
    edges = np.asarray(reference["edges"], float)
    ref = np.asarray(reference["shares"], float)
    live = live[np.isfinite(live)]
    if len(live) == 0 or len(edges) < 2:
        return float("nan")
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, live, side="right"), minlength=len(ref))[:len(ref)]
    cur = np.maximum(counts / len(live), EPS)
    ref = np.maximum(ref, EPS)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks(reference: dict, live: np.ndarray) -> tuple[float, float]:
    """KS statistic and p-value of `live` against the reference sample."""
    from scipy.stats import ks_2samp

    live = live[np.isfinite(live)]
    sample = np.asarray(reference["sample"], float)
    if len(live) == 0 or len(sample) == 0:
        return float("nan"), float("nan")
    r = ks_2samp(sample, live)
    return float(r.statistic), float(r.pvalue)


def report(reference: dict[str, dict], live: dict[str, np.ndarray], threshold: float) -> list[dict]:
    """One row per feature: n, psi, ks, ks_pvalue, drifted (psi > threshold)."""
    out = []
    for name, ref in reference.items():
        x = np.asarray(live.get(name, []), float)
        p = psi(ref, x)
        k, pv = ks(ref, x)
        out.append({"feature": name, "n": int(np.isfinite(x).sum()), "psi": p, "ks": k, "ks_pvalue": pv,
                    "drifted": bool(np.isfinite(p) and p > threshold)})
    return out
