"""The forecasters: a Keras MLP and the naive baselines it must beat, all giving P(up) and a return.

Every model is fitted on a training frame of features and realized forward log returns and
predicts on a matrix of features (columns in `features.FEATURES` order). TensorFlow is imported
only when an MLP is built or loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Fitted:
    name: str
    predict: Predict                       # X -> (prob_up, pred_return)
    model: object = None                   # the Keras model, for the MLP
    info: dict = field(default_factory=dict)


def _direction_rows(y: np.ndarray) -> np.ndarray:
    return y != 0


def climatology(X: np.ndarray, y: np.ndarray) -> Fitted:
    """The training up-rate (zero returns left out) and a zero return, whatever the features."""
    up = float(np.mean(y[_direction_rows(y)] > 0))
    return Fitted("climatology", lambda Z: (np.full(len(Z), up), np.zeros(len(Z))), info={"up_rate": up})


def _linear(name: str, cols: list[int], X: np.ndarray, y: np.ndarray, seed: int) -> Fitted:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = _direction_rows(y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500, random_state=seed))
    clf.fit(X[d][:, cols], (y[d] > 0).astype(int))
    reg = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    reg.fit(X[:, cols], y)
    return Fitted(name, lambda Z: (clf.predict_proba(Z[:, cols])[:, 1], reg.predict(Z[:, cols])),
                  info={"clf": clf, "reg": reg})


def momentum(X: np.ndarray, y: np.ndarray, feature_names: list[str], seed: int = 0) -> Fitted:
    """One-feature logistic (and linear) model on the last 1-minute return."""
    return _linear("momentum", [feature_names.index("ret_1")], X, y, seed)


def linear(X: np.ndarray, y: np.ndarray, seed: int = 0) -> Fitted:
    """Logistic regression for the direction, ridge for the return, on all features."""
    return _linear("linear", list(range(X.shape[1])), X, y, seed)


@dataclass(frozen=True)
class MlpConfig:
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 256          # with lr 3e-3: better and ~2x faster than 1024 / 1e-3 (measured on -SIMSIG data)
    learning_rate: float = 3e-3
    patience: int = 5
    validation_fraction: float = 0.1     # the LAST part of the training rows, by time
    seed: int = 0


def build_mlp(X: np.ndarray, y_scale: float, cfg: MlpConfig):
    """Keras MLP, raw features in -> {"prob_up", "pred_return"} out (standardisation inside)."""
    import keras
    from keras import layers

    inp = keras.Input(shape=(X.shape[1],), name="features")
    # Standardise with the training mean/variance, except features constant in the training window
    # (day-of-week within one day): their variance is rounding noise, and dividing by it would turn
    # the next day's value into a 1e13 input. Those keep unit scale.
    X = np.asarray(X, dtype=np.float64)       # float32 sums turn a constant into variance ~1e-9
    mean, var = X.mean(axis=0), X.var(axis=0)
    var = np.where(var < 1e-10, 1.0, var)
    h = layers.Normalization(mean=mean, variance=var, name="standardize")(inp)
    for i, n in enumerate(cfg.hidden):
        h = layers.Dense(n, activation="relu", name=f"dense_{i}")(h)
        if cfg.dropout:
            h = layers.Dropout(cfg.dropout, seed=cfg.seed + i)(h)
    prob = layers.Dense(1, activation="sigmoid", name="prob")(h)
    ret_scaled = layers.Dense(1, name="ret_scaled")(h)
    train = keras.Model(inp, {"prob": prob, "ret_scaled": ret_scaled})
    # The exported model returns the return in natural units.
    ret = layers.Rescaling(y_scale, name="pred_return")(ret_scaled)
    export = keras.Model(inp, {"prob_up": layers.Identity(name="prob_up")(prob), "pred_return": ret})
    return train, export


def mlp(X: np.ndarray, y: np.ndarray, cfg: MlpConfig = MlpConfig()) -> Fitted:
    """Fit the two-headed MLP: binary cross-entropy on the direction, MSE on the scaled return."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    d = _direction_rows(y)
    X64, y = X[d], y[d]                           # zero returns have no direction: left out
    X = X64.astype("float32")
    scale = float(np.std(y)) or 1.0
    train, export = build_mlp(X64, scale, cfg)
    train.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss={"prob": "binary_crossentropy", "ret_scaled": "mse"},
                  loss_weights={"prob": 1.0, "ret_scaled": 0.5})
    n_val = max(1, int(len(X) * cfg.validation_fraction))
    targets = {"prob": (y > 0).astype("float32")[:, None], "ret_scaled": (y / scale).astype("float32")[:, None]}
    tr = slice(0, len(X) - n_val)
    va = slice(len(X) - n_val, len(X))
    hist = train.fit(X[tr], {k: v[tr] for k, v in targets.items()},
                     validation_data=(X[va], {k: v[va] for k, v in targets.items()}),
                     epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True, verbose=0,
                     callbacks=[keras.callbacks.EarlyStopping(patience=cfg.patience, restore_best_weights=True)])
    predict = batch_predictor(export)
    return Fitted("mlp", predict, model=export,
                  info={"epochs_run": len(hist.history["loss"]), "return_scale": scale,
                        "val_loss": float(min(hist.history["val_loss"]))})


def batch_predictor(model) -> Predict:
    """Whole-batch inference through a compiled graph (MEASURED.md: never `model.predict` on rows)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def predict(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(Z) == 0:
            return np.empty(0), np.empty(0)
        out = fn(tf.convert_to_tensor(np.asarray(Z, dtype="float32")))
        return out["prob_up"].numpy().ravel().astype(float), out["pred_return"].numpy().ravel().astype(float)

    return predict


def baseline_params(X: np.ndarray, y: np.ndarray, feature_names: list[str], seed: int = 0) -> dict:
    """The naive baselines fitted on the training rows, as plain numbers (kept with the model so
    the stream and the outcomes can score them next to it)."""
    j = feature_names.index("ret_1")
    mom = _linear("momentum", [j], X, y, seed)
    clf, reg = mom.info["clf"], mom.info["reg"]
    sc, lr = clf.named_steps["standardscaler"], clf.named_steps["logisticregression"]
    rsc, ridge = reg.named_steps["standardscaler"], reg.named_steps["ridge"]
    return {"climatology": {"up_rate": climatology(X, y).info["up_rate"]},
            "momentum": {"feature": "ret_1", "mean": float(sc.mean_[0]), "scale": float(sc.scale_[0]),
                         "coef": float(lr.coef_[0][0]), "intercept": float(lr.intercept_[0]),
                         "ret_mean": float(rsc.mean_[0]), "ret_scale": float(rsc.scale_[0]),
                         "ret_coef": float(ridge.coef_[0]), "ret_intercept": float(ridge.intercept_)}}


def baseline_predictions(params: dict, ret_1: np.ndarray) -> dict[str, np.ndarray]:
    """Climatology and momentum predictions from `baseline_params` (pure numpy)."""
    m = params["momentum"]
    z = (np.asarray(ret_1, float) - m["mean"]) / m["scale"]
    zr = (np.asarray(ret_1, float) - m["ret_mean"]) / m["ret_scale"]
    return {"climatology_prob_up": np.full(len(z), params["climatology"]["up_rate"]),
            "momentum_prob_up": 1.0 / (1.0 + np.exp(-(m["intercept"] + m["coef"] * z))),
            "momentum_return": m["ret_intercept"] + m["ret_coef"] * zr}
