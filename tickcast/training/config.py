"""What a training run is given: its configuration, the families it may fit, and the errors it raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from tickcast import modeling

BASELINES = ("climatology", "momentum")
CANDIDATES = ("linear", "mlp", "conv")
LEAK_ACCURACY = 0.60        # direction accuracy above this at minutes' horizons is treated as a leak
MIN_BLOCKS_PER_FOLD = 5     # bootstrap blocks each walk-forward test block must span at least


class TrainingError(RuntimeError):
    """Training cannot go on (no data, a leak, mixed symbols); the message says why."""


class LeakageError(TrainingError):
    pass



@dataclass(frozen=True)
class TrainConfig:
    horizon: int
    symbols: tuple[str, ...] | None = None
    end_ms: int | None = None                # use bars/features up to this time only
    start_ms: int | None = None              # and from this time on (a sliding window); None: all history
    folds: int = 4
    initial: float = 0.5
    bootstrap_reps: int = 1000
    seed: int = 0
    guard_samples: int = 20
    min_champion_rows: int = 500
    shuffle_labels: bool = False             # negative control: should find nothing
    families: tuple[str, ...] = CANDIDATES
    leak_accuracy: float = LEAK_ACCURACY
    min_blocks_per_fold: int = MIN_BLOCKS_PER_FOLD
    importance_rows: int = 20_000            # test rows per fold used for permutation importance at most
    mlp: modeling.MlpConfig = field(default_factory=modeling.MlpConfig)
    conv: modeling.ConvConfig = field(default_factory=modeling.ConvConfig)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
