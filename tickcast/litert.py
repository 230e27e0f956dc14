"""A registered model's LiteRT (TFLite) artefact, loaded and called without TensorFlow or MLflow.

The prediction service imports only this (ai_edge_litert + numpy: a worker stays ~40 MiB, where
TensorFlow would add ~600 MiB and 4.6 s, MLflow ~100 MiB and 1.2 s). `model_io` writes and checks
the artefact at registration.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class ExportError(RuntimeError):
    """The LiteRT artefact does not reproduce the Keras model: the version is not registered."""


class LiteModel:
    """A registered version's LiteRT artefact: raw feature rows -> (prob_up, pred_return).

    Imports only ai_edge_litert and numpy (a worker stays ~40 MiB; TensorFlow would add ~600 MiB
    and 4.6 s). One interpreter is not thread-safe: calls are serialised by a lock (3 µs a row).
    """

    def __init__(self, flatbuffer: bytes, meta: dict, name: str = "", version: str = ""):
        import threading

        from ai_edge_litert.interpreter import Interpreter

        self.name, self.version, self.meta = name, version, meta
        self._it = Interpreter(model_content=flatbuffer)
        runner = self._it.get_signature_runner()
        ins, outs = runner.get_input_details(), runner.get_output_details()
        self._in = ins["features"]["index"]
        self._prob, self._ret = outs["prob_up"]["index"], outs["pred_return"]["index"]
        self._rows = None
        self._lock = threading.Lock()
        self.n_features = int(ins["features"]["shape_signature"][-1])
        if meta.get("features") is not None and len(meta["features"]) != self.n_features:
            raise ExportError(f"{name} v{version}: the LiteRT model takes {self.n_features} features, "
                              f"meta.json lists {len(meta['features'])}")

    @classmethod
    def open(cls, folder: Path, name: str = "", version: str = "") -> "LiteModel":
        """Load `model.tflite` + `meta.json` from a folder (as `materialize` leaves them)."""
        folder = Path(folder)
        return cls((folder / "model.tflite").read_bytes(), json.loads((folder / "meta.json").read_text()),
                   name, version)

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        n = len(X)
        if n == 0:
            return np.empty(0), np.empty(0)
        with self._lock:
            if self._rows != n:        # resizing costs ~50 µs: keep the last shape
                self._it.resize_tensor_input(self._in, [n, self.n_features])
                self._it.allocate_tensors()
                self._rows = n
            self._it.set_tensor(self._in, X)
            self._it.invoke()
            p = self._it.get_tensor(self._prob).reshape(-1).astype(float)
            r = self._it.get_tensor(self._ret).reshape(-1).astype(float)
        return p, r
