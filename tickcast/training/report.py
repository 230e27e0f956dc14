"""The training report a person reads (markdown), from the report dict."""
from __future__ import annotations

from tickcast.training.config import BASELINES

def markdown(report: dict) -> str:
    """The report a person reads: candidates x metrics with intervals, margins, importance, the decision."""
    lines = [f"## tickcast-h{report['horizon']}: walk-forward, {report['tested_rows']} tested rows, "
             f"{len(report['folds'])} folds, {report['bootstrap_reps']} block-bootstrap replicates "
             f"({report['block_minutes']} min blocks, {report['level']:.0%} intervals)", "",
             "| model | kind | Brier | log loss | direction accuracy | MAE | R² |", "|---|---|---|---|---|---|---|"]
    for m, mt in report["overall"].items():
        cell = lambda k, f="{:.5f}": f"{f.format(mt[k]['value'])} [{f.format(mt[k]['lo'])}, {f.format(mt[k]['hi'])}]"  # noqa: E731
        kind = "baseline" if m in BASELINES else "candidate"
        lines.append(f"| {m} | {kind} | {cell('brier')} | {cell('log_loss')} | {cell('accuracy', '{:.4f}')} | "
                     f"{cell('mae', '{:.2e}')} | {cell('r2', '{:.4f}')} |")
    mr = report["majority_rate"]
    lines += ["", f"Majority-class rate: {mr['value']:.4f} [{mr['lo']:.4f}, {mr['hi']:.4f}]; zero returns "
              f"(left out of direction metrics): {report['zero_returns']['tested_rows']} tested rows.", ""]
    g = report.get("gate")
    if g:
        best = g["best"]
        lines.append(f"### Margin of {best} (best Brier) over the naive baselines")
        for b, m in report["margins"].items():
            lines.append(f"- vs {b}: {m['accuracy_points']:+.2f} accuracy points; Brier improvement "
                         f"{m['brier_improvement']:+.6f} [{m['brier_improvement_lo']:+.6f}, {m['brier_improvement_hi']:+.6f}]")
        lines += ["", f"### Features that matter to {best} (permutation importance on the test folds, Brier increase)"]
        for r in report["importance"].get(best, [])[:10]:
            lines.append(f"- {r['feature']}: {r['brier_increase']:+.6f}")
        lines += ["", "### Gate"]
        for c in g["checks"]:
            lines.append(f"- [{'x' if c['passed'] else ' '}] {c['check']}: {c['words']}")
        lines += ["", f"**Decision:** {g['decision']}"]
    if report.get("registered"):
        lines += ["", "| candidate | version | alias | reason |", "|---|---|---|---|"]
        for f, r in report["registered"].items():
            lines.append(f"| {f} | {r['version']} | {r['alias']} | {r['reason']} |")
    if report.get("train_seconds") is not None:
        lines.append(f"\nTraining time: {report['train_seconds']:.0f} s (walk-forward {report['walk_forward_seconds']:.0f} s, "
                     f"final fits and registration {report['register_seconds']:.0f} s).")
    return "\n".join(lines) + "\n"
