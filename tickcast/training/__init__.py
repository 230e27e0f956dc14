"""Training (`tickcast train`): candidate families walk-forward against the naive baselines, one champion per horizon.

Reads the Delta tables only (silver.features for inputs, silver.bars_1m for labels). The candidates
(`linear`, `mlp`, `conv`: Keras models on one silver.features row) and the naive baselines
(climatology, momentum) are fitted on the same expanding training windows and scored on the same
out-of-sample test blocks. One rule picks the champion: the candidate with the best walk-forward
Brier score, promoted only if the lower ends of the 95% paired block-bootstrap intervals of its
Brier improvement over climatology and over momentum are above zero, no other candidate beats it
significantly, its direction accuracy is not above the leak threshold, and it is not significantly
worse than the current champion on rows after that champion's training end. Every candidate is
registered; the others get `challenger` and the reason in words.

Modules: `config` (TrainConfig, errors), `data` (reads, leakage guard), `walkforward` (evaluation),
`gate` (the promotion rule), `report` (markdown), `command` (train and register).
"""
from tickcast.training.command import train
from tickcast.training.config import (BASELINES, CANDIDATES, LEAK_ACCURACY, MIN_BLOCKS_PER_FOLD, LeakageError,
                                      TrainConfig, TrainingError, iso)
from tickcast.training.data import (choose_symbols, enough_history, leakage_guard, needed_minutes, read_bars,
                                    read_features)
from tickcast.training.gate import compare_champion, gate, margins
from tickcast.training.report import markdown
from tickcast.training.walkforward import WEEKLY, Evaluation, evaluate, fit, fit_baselines, inputs, model_features

__all__ = ["BASELINES", "CANDIDATES", "LEAK_ACCURACY", "MIN_BLOCKS_PER_FOLD", "WEEKLY", "Evaluation", "LeakageError",
           "TrainConfig", "TrainingError", "choose_symbols", "compare_champion", "enough_history", "evaluate", "fit",
           "fit_baselines", "gate", "inputs", "iso", "leakage_guard", "margins", "markdown", "model_features",
           "needed_minutes", "read_bars", "read_features", "train"]
