"""Request and response models: they validate requests and generate /openapi.json (one definition)."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field

# A feature value: a JSON number, finite. Strict: "NaN"/"1.5" strings and booleans are refused,
# and NaN/Infinity literals (Flask's parser accepts them) fail `allow_inf_nan`.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Horizon = Annotated[int, Field(strict=True, ge=1, le=10_080, description="minutes ahead")]


class ErrorBody(BaseModel):
    """Every error: a message, and the offending fields when there are some (never their values)."""
    model_config = ConfigDict(extra="allow")
    error: str
    fields: Optional[list[str]] = None


class Prediction(BaseModel):
    prob_up: float = Field(description="probability that the log return over the horizon is > 0")
    pred_return: float = Field(description="predicted log return over the horizon")
    horizon: int
    model_name: str
    model_version: str
    feature_version: str


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"horizon": 1, "rows": [{"ret_1": 0.0}]}})
    horizon: Horizon
    rows: list[dict[str, Number]] = Field(
        min_length=1, description="feature rows by name: every feature of the champion's signature "
                                  "(GET /v2/models/tickcast-h<H> lists them), finite numbers; at most "
                                  "TICKCAST_SERVE_MAX_ROWS rows (more is a 413)")


class Predictions(BaseModel):
    predictions: list[Prediction]


class SymbolPath(BaseModel):
    symbol: str = Field(max_length=64)


class HorizonQuery(BaseModel):
    horizon: Annotated[int, Field(ge=1, le=10_080)] = Field(description="minutes ahead")


class Latest(Prediction):
    symbol: str
    window_start: str = Field(description="the bar's minute (ISO 8601, UTC)")
    staleness_seconds: float = Field(description="seconds since that bar closed (window_start + 60 s)")


class Score(BaseModel):
    hit_rate: Optional[float] = None
    brier: Optional[float] = None


class LiveScore(Score):
    window: str
    computed_at: str
    n: int
    baselines: dict[str, Score]


class Gate(BaseModel):
    result: Optional[str] = None
    reason: Optional[str] = None


class VersionInfo(BaseModel):
    version: str
    aliases: list[str]
    feature_version: Optional[str] = None
    training_end: Optional[str] = None
    walk_forward: Score
    gate: Gate
    live: list[LiveScore]


class ModelEvent(BaseModel):
    event_time: str = Field(description="ISO 8601 UTC")
    horizon: int
    model_name: str
    model_version: Optional[str] = None
    event: str = Field(description="promotion, refusal, demotion, expiry, failed_retrain, abandoned, "
                                   "manual_promotion or rollback")
    reason: str
    numbers: Optional[dict] = None
    source: str


class HorizonModels(BaseModel):
    name: str
    horizon: int
    champion: Optional[VersionInfo] = None
    challengers: list[VersionInfo]
    serving: Optional[str] = Field(None, description="the version this worker answers with")
    error: Optional[str] = None
    events: list[ModelEvent] = Field(default_factory=list, description="the newest rows of ops.model_events")


class Models(BaseModel):
    models: list[HorizonModels]
    synced_at: Optional[float] = None


class Reloaded(BaseModel):
    serving: dict[str, str]
    errors: dict[str, str]


class ModelPath(BaseModel):
    model_name: str = Field(max_length=64)


class VersionPath(ModelPath):
    model_version: str = Field(max_length=32, description="a registered version number; only the champion's serves")


class V2Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Optional[dict] = Field(None, description="binary_data_size: the tensor's bytes after the JSON "
                                                         "header (binary tensor data extension)")
    data: Optional[list[Number] | list[list[Number]]] = None


class V2RequestedOutput(BaseModel):
    name: str
    parameters: Optional[dict] = Field(None, description="binary_data: answer this output in binary")


class V2Infer(BaseModel):
    id: Optional[str] = None
    parameters: Optional[dict] = Field(None, description="binary_data_output: answer every output in binary")
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1)
    outputs: Optional[list[V2RequestedOutput]] = Field(None, description="the outputs to answer (default: all)")


class V2OutTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Optional[dict] = None
    data: Optional[list[float]] = Field(None, description="absent when the output was asked for as binary")


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: Optional[str] = None
    outputs: list[V2OutTensor]


class V2TensorMeta(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2Metadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMeta]
    outputs: list[V2TensorMeta]
    parameters: dict


class Status(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str


class V2Server(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2Health(BaseModel):
    live: Optional[bool] = None
    ready: Optional[bool] = None
