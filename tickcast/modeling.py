"""The forecasters: candidate Keras families and the naive baselines, all giving P(up) and a return.

Candidates (each a plain Keras model: one silver.features row in, {"prob_up", "pred_return"} out,
convertible to LiteRT): `linear_keras` (logistic + ridge heads), `mlp` (summary features) and
`conv` (a 1-D convolution over the row's history columns). Baselines (never registered):
climatology and momentum. Every model is fitted on a matrix of its input columns and realized
forward log returns. TensorFlow is imported only when a Keras model is built or loaded.
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


@dataclass(frozen=True)
class ConvConfig:
    """The history family: a small 1-D convolution over the last `features.HISTORY_BARS` minutes."""
    filters: int = 16
    kernel: int = 5
    dense: int = 32
    dropout: float = 0.1
    epochs: int = 20
    batch_size: int = 512
    learning_rate: float = 3e-3
    patience: int = 4
    validation_fraction: float = 0.1
    seed: int = 0


def _standardizer(X: np.ndarray):
    """A Normalization layer with the training mean/variance, except features constant in the
    training window (day-of-week within one day): their variance is rounding noise, and dividing
    by it would turn the next day's value into a 1e13 input. Those keep unit scale."""
    from keras import layers

    mean, var = _moments(X)
    return layers.Normalization(mean=mean, variance=var, name="standardize")


def _moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)       # float32 sums turn a constant into variance ~1e-9
    mean, var = X.mean(axis=0), X.var(axis=0)
    return mean, np.where(var < 1e-10, 1.0, var)


def _heads(inp, h, y_scale: float):
    """(training model, exported model): the exported one returns the return in natural units."""
    import keras
    from keras import layers

    prob = layers.Dense(1, activation="sigmoid", name="prob")(h)
    ret_scaled = layers.Dense(1, name="ret_scaled")(h)
    train = keras.Model(inp, {"prob": prob, "ret_scaled": ret_scaled})
    ret = layers.Rescaling(y_scale, name="pred_return")(ret_scaled)
    export = keras.Model(inp, {"prob_up": layers.Identity(name="prob_up")(prob), "pred_return": ret})
    return train, export


def build_mlp(X: np.ndarray, y_scale: float, cfg: MlpConfig):
    """Keras MLP, raw features in -> {"prob_up", "pred_return"} out (standardisation inside)."""
    import keras
    from keras import layers

    inp = keras.Input(shape=(X.shape[1],), name="features")
    h = _standardizer(X)(inp)
    for i, n in enumerate(cfg.hidden):
        h = layers.Dense(n, activation="relu", name=f"dense_{i}")(h)
        if cfg.dropout:
            h = layers.Dropout(cfg.dropout, seed=cfg.seed + i)(h)
    return _heads(inp, h, y_scale)


def build_conv(X: np.ndarray, y_scale: float, cfg: ConvConfig, channels: int, history: int):
    """Keras Conv1D over one row's history columns, joined with its summary features.

    The row is `summary features + history columns` (the last `history` columns, channel-major).
    It is split and reshaped inside the model with plain Reshape/Cropping1D/Permute layers
    ((channels, bars) -> (bars, channels)), so the model takes one silver.features row like any
    other and converts to LiteRT (no Lambda, no recurrence).
    """
    import keras
    from keras import layers

    n = X.shape[1]
    summary, bars = n - history, history // channels
    inp = keras.Input(shape=(n,), name="features")
    z = layers.Reshape((n, 1), name="as_sequence")(_standardizer(X)(inp))
    h = layers.Cropping1D((summary, 0), name="history")(z)
    h = layers.Reshape((channels, bars), name="by_channel")(h)
    h = layers.Permute((2, 1), name="by_minute")(h)               # (bars, channels), newest first
    h = layers.Conv1D(cfg.filters, cfg.kernel, activation="relu", name="conv_0")(h)
    h = layers.Conv1D(cfg.filters, cfg.kernel, activation="relu", name="conv_1")(h)
    h = layers.Flatten(name="flat")(h)
    if summary:
        s = layers.Flatten(name="summary_flat")(layers.Cropping1D((0, history), name="summary")(z))
        h = layers.Concatenate(name="joined")([h, s])
    h = layers.Dense(cfg.dense, activation="relu", name="dense_0")(h)
    if cfg.dropout:
        h = layers.Dropout(cfg.dropout, seed=cfg.seed)(h)
    return _heads(inp, h, y_scale)


def _fit_two_headed(name: str, build, X: np.ndarray, y: np.ndarray, cfg) -> Fitted:
    """Binary cross-entropy on the direction, MSE on the scaled return; early stopping on the
    last `validation_fraction` of the rows by time."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    d = _direction_rows(y)
    X64, y = X[d], y[d]                           # zero returns have no direction: left out
    X = X64.astype("float32")
    scale = float(np.std(y)) or 1.0
    train, export = build(X64, scale)
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
    return Fitted(name, batch_predictor(export), model=export,
                  info={"epochs_run": len(hist.history["loss"]), "return_scale": scale,
                        "val_loss": float(min(hist.history["val_loss"]))})


def mlp(X: np.ndarray, y: np.ndarray, cfg: MlpConfig = MlpConfig()) -> Fitted:
    """Fit the two-headed MLP on the summary features."""
    return _fit_two_headed("mlp", lambda X64, scale: build_mlp(X64, scale, cfg), X, y, cfg)


def conv(X: np.ndarray, y: np.ndarray, cfg: ConvConfig = ConvConfig(), channels: int = 3,
         history: int | None = None) -> Fitted:
    """Fit the two-headed Conv1D: X = summary features then `history` history columns (channel-major,
    `channels` channels; all columns are history when `history` is None)."""
    h = X.shape[1] if history is None else history
    return _fit_two_headed("conv", lambda X64, scale: build_conv(X64, scale, cfg, channels, h), X, y, cfg)


def linear_keras(X: np.ndarray, y: np.ndarray, seed: int = 0) -> Fitted:
    """Logistic regression (direction) and ridge (return) fitted exactly by scikit-learn, written
    into a Keras model (Normalization -> two Dense heads) that scores like every other family."""
    import keras
    from keras import layers
    from sklearn.linear_model import LogisticRegression, Ridge

    X = np.asarray(X, dtype=np.float64)
    norm = _standardizer(X)
    mean, var = _moments(X)
    Z = (X - mean) / np.sqrt(var)
    d = _direction_rows(y)
    clf = LogisticRegression(C=1.0, max_iter=500, random_state=seed).fit(Z[d], (y[d] > 0).astype(int))
    reg = Ridge(alpha=1.0).fit(Z, y)
    inp = keras.Input(shape=(X.shape[1],), name="features")
    h = norm(inp)
    prob = layers.Dense(1, activation="sigmoid", name="prob")
    ret = layers.Dense(1, name="pred_return_linear")
    out_p, out_r = prob(h), ret(h)
    prob.set_weights([clf.coef_.T.astype("float32"), clf.intercept_.astype("float32")])
    ret.set_weights([reg.coef_[:, None].astype("float32"), np.array([reg.intercept_], "float32")])
    export = keras.Model(inp, {"prob_up": layers.Identity(name="prob_up")(out_p),
                               "pred_return": layers.Identity(name="pred_return")(out_r)})
    return Fitted("linear", batch_predictor(export), model=export,
                  info={"coef_abs_max": float(np.abs(clf.coef_).max())})


def batch_predictor(model) -> Predict:
    """Whole-batch inference through a compiled graph (never `model.predict` on rows: docs/performance.md#keras-predict)."""
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
