"""Models in MLflow: log and register, aliases (`champion`, `challenger`), load for scoring.

A registered version is a pyfunc model whose artifacts hold the Keras model, `meta.json` (horizon,
feature list and version, training data end), `reference.json` (each feature's training
distribution, for drift) and `model.tflite`, the same model as a LiteRT flatbuffer. Spark jobs load
the Keras model and call it on whole batches; the prediction service loads only the LiteRT
artefact and meta.json (`LiteModel`, no TensorFlow); the pyfunc wrapper is for everyone else.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tickcast.litert import ExportError, LiteModel  # noqa: F401  (re-exported)
from tickcast.modeling import batch_predictor
from tickcast.settings import Settings

EXPERIMENT = "tickcast"
CHAMPION, CHALLENGER = "champion", "challenger"

try:  # the pyfunc base class, without making mlflow a hard import of this module
    from mlflow.pyfunc import PythonModel as _PythonModel
except Exception:  # pragma: no cover - mlflow is a pinned dependency
    _PythonModel = object


def model_name(horizon: int) -> str:
    return f"tickcast-h{horizon}"


def configure(s: Settings):
    """Point MLflow at TICKCAST_MLFLOW_URI; with the local SQLite store, artifacts go beside it."""
    import mlflow

    uri = s.mlflow_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(EXPERIMENT) is None:
        art = None
        if uri.startswith("sqlite:///"):
            art = (Path(uri[len("sqlite:///"):]).parent / "artifacts").absolute().as_uri()
        client.create_experiment(EXPERIMENT, artifact_location=art)
    mlflow.set_experiment(EXPERIMENT)
    return client


class KerasForecaster(_PythonModel):
    """pyfunc wrapper: a DataFrame of feature columns -> prob_up, pred_return."""

    def load_context(self, context):
        import keras

        self.model = keras.models.load_model(context.artifacts["keras"], compile=False)
        self.meta = json.loads(Path(context.artifacts["meta"]).read_text())

    def predict(self, context, model_input, params=None):
        import pandas as pd

        X = model_input[self.meta["features"]].to_numpy("float32")
        p, r = batch_predictor(self.model)(X)
        return pd.DataFrame({"prob_up": p, "pred_return": r})


LITERT_RTOL, LITERT_ATOL = 1e-5, 1e-7


def export_litert(model, path: Path, reference_rows: np.ndarray, convert=None) -> None:
    """Write `model` as a LiteRT flatbuffer and check it against Keras on `reference_rows`.

    `model.export(format="litert")` keeps the Normalization constants; other converter routes
    (`TFLiteConverter.from_concrete_functions`) silently turn them into NaN (docs/performance.md#litert-normalization-nan), so the
    artefact is trusted only after its outputs equal Keras's (rtol 1e-5); otherwise ExportError.
    `convert(model, path)` replaces the Keras export (tests check the check with the other routes).
    """
    import contextlib
    import io

    path = Path(path)
    with contextlib.redirect_stdout(io.StringIO()):    # keras prints "Saved artifact at ..."
        if convert is None:
            model.export(str(path), format="litert")
        else:
            convert(model, path)
    X = np.asarray(reference_rows, dtype="float32")
    want_p, want_r = batch_predictor(model)(X)
    try:
        got_p, got_r = LiteModel(path.read_bytes(), {"features": [""] * X.shape[1]}).predict(X)
    except Exception as e:        # some converter routes give graphs the interpreter cannot run
        raise ExportError(f"the LiteRT artefact does not run: {type(e).__name__}: {e}: not registered") from e
    for what, got, want in (("prob_up", got_p, want_p), ("pred_return", got_r, want_r)):
        if not np.allclose(got, want, rtol=LITERT_RTOL, atol=LITERT_ATOL) or not np.all(np.isfinite(got)):
            diff = np.abs(got - want)
            worst = float(np.max(diff)) if len(diff) and np.isfinite(diff).all() else float("nan")
            raise ExportError(f"LiteRT export of {what} differs from Keras on the reference rows "
                              f"(max abs diff {worst:.3g}, rtol {LITERT_RTOL}): not registered")


def log_model(model, meta: dict, reference: dict, input_example, reference_rows=None,
              version_tags: dict | None = None) -> tuple[str, str]:
    """Log the Keras model (and its verified LiteRT artefact) as a pyfunc in the active run and
    register it, born with `version_tags` (one registry write, so a kill cannot leave it untagged);
    returns (name, version). ExportError if the LiteRT artefact differs from Keras."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    name = model_name(meta["horizon"])
    with tempfile.TemporaryDirectory() as tmp:
        kpath, mpath, rpath = Path(tmp, "model.keras"), Path(tmp, "meta.json"), Path(tmp, "reference.json")
        lpath = Path(tmp, "model.tflite")
        model.save(kpath)
        rows = input_example.to_numpy("float32")
        if reference_rows is not None:
            rows = np.concatenate([rows, np.asarray(reference_rows, dtype="float32")])
        export_litert(model, lpath, rows)
        mpath.write_text(json.dumps(meta, indent=1))
        rpath.write_text(json.dumps(reference))
        p, r = batch_predictor(model)(input_example.to_numpy("float32"))
        signature = infer_signature(input_example, pd.DataFrame({"prob_up": p, "pred_return": r}))
        info = mlflow.pyfunc.log_model(
            name="model", python_model=KerasForecaster(),
            artifacts={"keras": str(kpath), "meta": str(mpath), "reference": str(rpath), "litert": str(lpath)},
            signature=signature, input_example=input_example)
        mv = mlflow.register_model(info.model_uri, name, tags=version_tags or None)
    return name, str(mv.version)


@dataclass
class Loaded:
    name: str
    version: str
    model: object
    meta: dict
    reference: dict

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def feature_version(self) -> str:
        return self.meta["feature_version"]

    @property
    def training_end_ms(self) -> int:
        return int(self.meta["training_end_ms"])

    def predictor(self):
        return batch_predictor(self.model)


def resolve(client, name: str, ref: str):
    """A version object for an alias (`champion`) or a version number; None if there is none."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        return None


def load(s: Settings, name: str, ref: str = CHAMPION) -> Loaded | None:
    """Download and load a registered version (alias or number); None if it does not exist."""
    import keras
    import mlflow

    client = configure(s)
    mv = resolve(client, name, ref)
    if mv is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=tmp))
        art = local / "artifacts"
        model = keras.models.load_model(art / "model.keras", compile=False)
        meta = json.loads((art / "meta.json").read_text())
        reference = json.loads((art / "reference.json").read_text())
    return Loaded(name, str(mv.version), model, meta, reference)


def materialize(client, name: str, version: str, dest: Path, warn=None) -> Path:
    """Put a version's `model.tflite` + `meta.json` in `dest/<name>/<version>/` (once) and return it.

    Versions registered before the LiteRT artefact existed are converted here once from their
    Keras model (this imports TensorFlow, in the calling process only) and checked like a new
    registration; `warn` is told so. A version whose conversion fails raises ExportError.
    """
    import mlflow

    folder = Path(dest) / name / str(version)
    if (folder / "model.tflite").exists() and (folder / "meta.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        uri = f"models:/{name}/{version}"
        art = Path(mlflow.artifacts.download_artifacts(f"{uri}/artifacts/meta.json", dst_path=tmp)).parent
        try:
            mlflow.artifacts.download_artifacts(f"{uri}/artifacts/model.tflite", dst_path=tmp)
        except Exception:
            if warn:
                warn(f"{name} v{version} has no LiteRT artefact (registered before it existed): "
                     "converting its Keras model once; re-register it to skip this")
            import keras
            import pandas as pd

            mlflow.artifacts.download_artifacts(f"{uri}/artifacts/model.keras", dst_path=tmp)
            model = keras.models.load_model(art / "model.keras", compile=False)
            example = mlflow.artifacts.download_artifacts(f"{uri}/input_example.json", dst_path=tmp)
            ex = json.loads(Path(example).read_text())
            rows = pd.DataFrame(ex["data"], columns=ex["columns"]).to_numpy("float32") if "columns" in ex \
                else np.asarray(ex, dtype="float32")
            export_litert(model, art / "model.tflite", rows)
        stage = Path(tmp, "stage")
        stage.mkdir()
        for f in ("model.tflite", "meta.json"):
            (stage / f).write_bytes((art / f).read_bytes())
        try:
            stage.rename(folder)            # atomic: readers see both files or none
        except OSError:
            if not (folder / "model.tflite").exists():   # another process won the race: fine
                raise
    return folder


def set_alias(client, name: str, alias: str, version: str, reason: str) -> None:
    """Move `alias` to `version`, keeping the champion's history for rollback."""
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, f"{alias}_reason", reason)
    if alias == CHAMPION:
        rm = client.get_registered_model(name)
        hist = json.loads(rm.tags.get("champion_history", "[]"))
        if not hist or hist[-1] != version:
            hist.append(version)
        client.set_registered_model_tag(name, "champion_history", json.dumps(hist))


# A version registered by a training run that has not finished registering all its candidates: never
# given an alias (aliases move only after the last registration), and refused by `models promote`.
REGISTRATION, UNFINISHED, COMPLETE, ABANDONED = "registration", "unfinished", "complete", "abandoned"


def unfinished(client, name: str) -> list[str]:
    """Versions of `name` still tagged as part of an unfinished registration (oldest first)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{name}' and tag.{REGISTRATION}='{UNFINISHED}'")
    except MlflowException:
        return []
    return sorted((str(mv.version) for mv in found), key=int)


def demote(client, name: str, version: str, event: str, reason: str) -> None:
    """Take `champion` from `version` (live decay or age), with the reason kept on the version."""
    client.delete_registered_model_alias(name, CHAMPION)
    client.set_model_version_tag(name, version, event, reason[:5000])
    client.set_model_version_tag(name, version, "champion_reason", f"{event}: {reason}"[:5000])


def rollback(client, name: str, reason: str) -> tuple[str, str]:
    """Give `champion` back to the previous champion; returns (from version, to version)."""
    rm = client.get_registered_model(name)
    hist = json.loads(rm.tags.get("champion_history", "[]"))
    if len(hist) < 2:
        raise ValueError(f"{name}: no earlier champion to roll back to (history {hist})")
    current, previous = hist[-1], hist[-2]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, previous, "champion_reason", f"rollback from v{current}: {reason}")
    client.set_model_version_tag(name, current, "rolled_back", reason)
    client.set_registered_model_tag(name, "champion_history", json.dumps(hist[:-1]))
    return current, previous


def versions(client, name: str) -> list[dict]:
    """Every version of a registered model with its aliases and headline scores (newest first)."""
    from mlflow.exceptions import MlflowException

    try:
        rm = client.get_registered_model(name)
    except MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, v in (rm.aliases or {}).items():
        aliases.setdefault(str(v), []).append(alias)
    out = []
    for mv in client.search_model_versions(f"name='{name}'"):
        t = mv.tags or {}
        out.append({"name": name, "version": str(mv.version), "aliases": sorted(aliases.get(str(mv.version), [])),
                    "brier": t.get("brier"), "accuracy": t.get("accuracy"), "training_end": t.get("training_end"),
                    "feature_version": t.get("feature_version"), "gate": t.get("gate"),
                    "registration": t.get(REGISTRATION, COMPLETE), "demoted": t.get("demotion") or t.get("expiry"),
                    "run_id": mv.run_id})
    return sorted(out, key=lambda r: int(r["version"]), reverse=True)


def registered_names(client) -> list[str]:
    return sorted(m.name for m in client.search_registered_models() if m.name.startswith("tickcast-h"))


def reference_distribution(X: np.ndarray, names: list[str], sample: int = 2000, seed: int = 0) -> dict:
    """Each feature's training distribution: decile edges with shares (PSI) and a sample (KS)."""
    rng = np.random.default_rng(seed)
    take = rng.choice(len(X), size=min(sample, len(X)), replace=False) if len(X) else np.array([], int)
    ref = {}
    for j, n in enumerate(names):
        col = X[:, j][np.isfinite(X[:, j])]
        edges = np.unique(np.quantile(col, np.linspace(0, 1, 11))) if len(col) else np.array([])
        counts = np.histogram(col, bins=edges)[0] if len(edges) > 1 else np.array([len(col)])
        ref[n] = {"edges": edges.tolist(), "shares": (counts / max(1, counts.sum())).tolist(),
                  "mean": float(col.mean()) if len(col) else None, "std": float(col.std()) if len(col) else None,
                  "sample": np.sort(X[take, j]).tolist()}
    return ref
