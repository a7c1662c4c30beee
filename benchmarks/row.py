"""The report and its artifact row as typed records: built once by bench, serialised by `to_json`, read back
by `from_json`.

report.json is these records' serialised form (benchmarks/report/report.schema.json is its contract): every
module reads a row's attributes, none its JSON keys. `to_json` writes the fields in declaration order and
leaves out those that are ABSENT (a key the document does not have, unlike None, which it writes as null),
so a report read back and written again is the same bytes. A leaf of benchmarks: stdlib, jsonschema and
train.errors only.

Records built by bench are strict: a key no record declares raises, so a typo cannot pass. A report read
back from a file (`Report.from_json(..., strict=False)`, what ship and --baseline use) ignores keys it does
not know and leaves a field it lacks ABSENT, as the schema allows: a report of the same schema_version
written by an earlier mobilepack (before `executor`, say) still reads.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from train.errors import MobilepackError

# 2: fresh-process memory, Google tool cross-check, latency quantiles.
# 3: per-output figures and gates by kind, 95% intervals, underpowered rows, user metrics, budget.
# 4: latency from repeated processes: repetitions with their samples, p50 interval, spread, unstable.
REPORT_SCHEMA_VERSION = 4
SCHEMA_PATH = Path(__file__).parent / "report" / "report.schema.json"


class ReportFieldError(MobilepackError, ValueError):
    """A report (or a part of one) has a field no record declares, lacks one, or breaks report.schema.json."""


class _Absent:
    """A key the document leaves out (None is written as null). Falsy, so `row.search or []` reads naturally."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "ABSENT"

    def __reduce__(self):  # one ABSENT through pickle (a Ray worker) and copy.deepcopy: `is ABSENT` holds
        return "ABSENT"


ABSENT: Any = _Absent()


def given(value):
    """None for a field the document leaves out, else its value."""
    return None if value is ABSENT else value


class _Record:
    """to_json / from_json for a dataclass; `_nested` names the fields holding records (alone, in a list or a dict)."""

    __slots__ = ()
    _nested: ClassVar[dict[str, type]] = {}

    def to_json(self) -> dict:
        return {f.name: _dump(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not ABSENT}

    @classmethod
    def from_json(cls, data: dict, strict: bool = True):
        if not isinstance(data, dict):
            raise ReportFieldError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        values = cls.parse_fields(data, strict)
        missing = [f.name for f in fields(cls) if f.name not in values and f.default is MISSING]
        if missing and strict:
            raise ReportFieldError(f"{cls.__name__}: missing field {missing[0]!r}")
        return cls(**values, **dict.fromkeys(missing, ABSENT))

    @classmethod
    def parse_fields(cls, part: dict, strict: bool = True) -> dict:
        """Some of this record's fields from their JSON form (a producer's dict): {field: value}, nested records
        built; a key that is no field of the record raises (ignored when not strict)."""
        known = [f.name for f in fields(cls)]
        unknown = [k for k in part if k not in known]
        if unknown and strict:
            raise ReportFieldError(f"{cls.__name__}: unknown field {unknown[0]!r}; known: {', '.join(known)}")
        return {k: _load(cls._nested.get(k), v, strict) for k, v in part.items() if k in known}

    def set_fields(self, part: dict) -> None:
        """Assign the fields `part` gives in their JSON form (a later stage's figures), each checked and typed."""
        for name, value in self.parse_fields(part).items():
            setattr(self, name, value)


def _dump(value):
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(kind: type | None, value, strict: bool):
    if kind is None or value is None:
        return value
    if isinstance(value, list):
        return [kind.from_json(v, strict) for v in value]
    if isinstance(value, dict) and getattr(kind, "_keyed", False):
        return {k: kind.from_json(v, strict) for k, v in value.items()}
    return kind.from_json(value, strict)


def record(cls):
    """A report record: keyword-only, slotted (assigning a misspelled attribute raises AttributeError)."""
    return dataclass(slots=True, kw_only=True)(cls)


@record
class OutputFigures(_Record):
    """One output of one artifact against the reference: the figures every kind has, then its kind's own."""

    name: str
    kind: str  # classification, regression, embedding
    kind_source: str
    max_abs_error: float
    max_rel_error: float | None
    rmse_rel: float | None
    reference_range: float
    sqnr_db: float | None  # None: identical to the reference
    classes: int = ABSENT  # classification
    agreement: float = ABSENT
    agreement_interval: list | None = ABSENT
    top5_agreement: float | None = ABSENT
    top5_agreement_interval: list = ABSENT
    accuracy: float | None = ABSENT
    accuracy_interval: list = ABSENT
    accuracy_drop_pp: float | None = ABSENT
    accuracy_drop_interval_pp: list = ABSENT
    cosine_mean: float = ABSENT  # embedding
    cosine_min: float = ABSENT
    mae: float = ABSENT  # labelled regression
    reference_mae: float = ABSENT
    tflite_name: str | None = ABSENT  # the artifact's own name for the output
    tflite_tensor: str | None = ABSENT
    coreml_name: str | None = ABSENT
    status: str = ABSENT  # passed / failed, once judged

    @property
    def own_name(self) -> str | None:
        return self.tflite_name or self.coreml_name or None


@record
class MetricEntry(_Record):
    """One --metric value of an artifact against the reference's."""

    _keyed: ClassVar[bool] = True  # a row holds {metric name: MetricEntry}
    value: float
    reference: float
    drop: float
    direction: str


@record
class Statistics(_Record):
    underpowered: bool
    notes: list[str]


@record
class SearchStep(_Record):
    """One candidate a budgeted `convert` tried, on the validation data."""

    candidate: str
    quantization: str = ABSENT
    size_bytes: int = ABSENT
    val_drop_pp: float | None = ABSENT
    val_min_sqnr_db: float | None = ABSENT
    within_budget: bool = ABSENT
    compared: str = ABSENT


@record
class FloatLayer(_Record):
    tensor: str
    layers: list[str]
    quantization_sqnr_db: float = ABSENT
    relative_weight_error: float = ABSENT


@record
class CompressionFallback(_Record):
    """A Core ML weight compressed otherwise than its variant says."""

    weight: str
    shape: list[int]
    block_size: int = ABSENT
    group_size: int = ABSENT
    uncompressed: bool = ABSENT
    reason: str


@record
class CpuFigures(_Record):
    """A NeuralNetwork row's figures at cpu precision (float32), beside its gated gpu/ane ones."""

    _nested: ClassVar[dict[str, type]] = {"outputs": OutputFigures}
    precision: str
    accuracy: float | None
    accuracy_interval: list | None
    accuracy_drop_pp: float | None
    accuracy_drop_interval_pp: list | None
    agreement: float | None
    agreement_interval: list | None
    max_abs_error: float
    sqnr_db: float | None
    outputs: list[OutputFigures]


@record
class Arm64Output(_Record):
    name: str
    dtype: str
    integer: bool
    elements: int
    bit_identical: int
    agreement_vs_host: float | None
    max_abs_error_vs_host: float
    agreement_vs_reference: float | None
    max_abs_error_vs_reference: float


@record
class Arm64Block(_Record):
    """A .tflite row on LiteRT's aarch64 build under emulation, against the host's run and Keras; error: refused."""

    _nested: ClassVar[dict[str, type]] = {"outputs": Arm64Output, "judged_outputs": OutputFigures}
    cpu: str
    samples: int
    error: str | None
    agreement_vs_host: float | None = ABSENT
    max_abs_error_vs_host: float = ABSENT
    bit_identical: int = ABSENT
    elements: int = ABSENT
    bit_identical_share: float | None = ABSENT
    agreement_vs_reference: float | None = ABSENT
    max_abs_error_vs_reference: float = ABSENT
    outputs: list[Arm64Output]
    judged_outputs: list[OutputFigures] = ABSENT  # fp16-inference rows: what the gate judged


@record
class DeviceMemory(_Record):
    kind: str  # peak / delta
    init_mb: float
    overall_mb: float


@record
class DeviceRun(_Record):
    """One benchmark_model log from a phone."""

    _nested: ClassVar[dict[str, type]] = {"memory": DeviceMemory}
    init_ms: float | None
    first_ms: float | None
    warmup_ms: float | None
    mean_ms: float | None
    std_ms: float | None
    count: int | None
    threads: int | None
    delegate: str
    graph: str | None = ABSENT
    memory: DeviceMemory | None
    log: str


@record
class DeviceBlock(_Record):
    _nested: ClassVar[dict[str, type]] = {"runs": DeviceRun}
    model: str | None
    android: str | None
    abi: str | None
    sha256: str
    runs: list[DeviceRun]


@record
class Memory(_Record):
    peak_rss_bytes: int
    baseline_rss_bytes: int
    rss_delta_bytes: int
    arena_bytes: int | None


@record
class LatencyEntry(_Record):
    """One thread count's latency over `repetitions` fresh processes (threads None: a Core ML row)."""

    _nested: ClassVar[dict[str, type]] = {"memory": Memory}
    threads: int | None
    init: float
    first: float
    warmup_runs: int
    runs: int
    mean: float
    std: float
    min: float
    max: float
    p5: float
    p50: float
    p90: float
    p95: float
    p99: float
    quantiles: list[float]
    cpu_p50: float | None
    p50_interval: list[float] | None
    spread: float
    unstable: bool
    repetitions: list[dict]  # each process's stats and samples, as benchmarks/latency/repeat.py reads them
    memory: Memory | None = ABSENT
    pid: int | None = ABSENT

    def rss_deltas(self) -> list[int]:
        """Every repetition's peak memory above its empty process, where measured."""
        return [r["rss_delta_bytes"] for r in self.repetitions if r.get("rss_delta_bytes") is not None]

    def repetition_p50s(self) -> list[float]:
        return [r["p50"] for r in self.repetitions]


@record
class Crosscheck(_Record):
    """Google's benchmark tool against mobilepack's p50 at one thread count."""

    threads: int
    p50_ms: float
    p50_interval: list[float]
    google_median_ms: float
    google_medians_ms: list[float]
    google_started: list[float] = ABSENT
    google_runs: int
    difference: float | None
    agrees: bool


@record
class ArtifactRow(_Record):
    """Everything a bench says about one artifact: identity, figures, gate, ARM64, phone, latency, recommendation."""

    _nested: ClassVar[dict[str, type]] = {
               "outputs": OutputFigures, "metrics": MetricEntry, "search": SearchStep, "float_layers": FloatLayer,
               "compression_fallbacks": CompressionFallback, "cpu_figures": CpuFigures, "statistics": Statistics,
               "arm64": Arm64Block, "device": DeviceBlock, "latency_ms": LatencyEntry, "memory": Memory,
               "crosscheck": Crosscheck}
    name: str
    target: str  # tflite / coreml
    format: str
    quantization: str
    path: str  # relative to the dist
    size_bytes: int
    sha256: str
    runtime: str  # litert / coreml / coreml-reference
    # the headline: the first classification output's figures, the worst error over every output
    accuracy: float | None
    accuracy_interval: list | None
    accuracy_drop_pp: float | None
    accuracy_drop_interval_pp: list | None
    agreement: float | None
    agreement_interval: list | None
    max_abs_error: float
    sqnr_db: float | None
    outputs: list[OutputFigures]
    metrics: dict[str, MetricEntry] | None
    search_budget: str = ABSENT  # chosen by a budgeted `convert`
    search: list[SearchStep] = ABSENT
    float_layers: list[FloatLayer] = ABSENT
    float_layer_reason: str | None = ABSENT
    budget_pp: float = ABSENT
    compute_units: str | None = ABSENT  # Core ML: the units it can use
    compute_units_note: str | None = ABSENT
    compression_fallbacks: list[CompressionFallback] = ABSENT
    precision: str | None = ABSENT  # the precision its figures were computed at (Core ML evaluator)
    cpu_figures: CpuFigures | None = ABSENT
    status: str  # passed / failed / skipped
    reason: str
    statistics: Statistics
    arm64: Arm64Block | None = ABSENT
    device: DeviceBlock | None = ABSENT
    latency_ms: list[LatencyEntry]
    latency_note: str | None
    memory: Memory | None
    crosscheck: list[Crosscheck]
    macs: int | None
    gmacs_per_s: float | None
    within_budget: bool
    budget_check: str
    recommended: bool
    recommendation_reason: str

    def best_p50(self) -> float | None:
        """The lowest p50 over its thread counts, None without latency."""
        return min((s.p50 for s in self.latency_ms or []), default=None)

    def can_use_neural_engine(self) -> bool:
        """As benchmarks/parity/compute_units.py judged it (its `compute_units` names the Neural Engine)."""
        return "Neural Engine" in (self.compute_units or "")

    def output_dicts(self) -> list[dict]:
        """The per-output figures as convert's Budget.check reads them (its contract is JSON)."""
        return [o.to_json() for o in self.outputs]


@record
class Report(_Record):
    """report.json: the run's context as the schema's blocks, and one ArtifactRow per artifact."""

    _nested: ClassVar[dict[str, type]] = {"artifacts": ArtifactRow}
    schema_version: int
    created_at: str
    machine: dict
    dataset: dict
    manifest: dict
    outputs: list[dict]
    reference: dict
    thresholds: dict
    budget: dict
    metric: dict | None
    threads: dict
    repeat: int
    pinned: bool
    executor: dict
    gate: dict
    recommended: dict
    crosscheck: dict
    arm64: dict = ABSENT
    device_results: dict | None = ABSENT
    artifacts: list[ArtifactRow]
    not_converted: list[dict] = ABSENT
    worst: dict | None
    baseline: dict = ABSENT

    @classmethod
    def from_json(cls, data: dict, strict: bool = True) -> Report:
        """A report read back; another schema_version is refused in one line."""
        found = data.get("schema_version") if isinstance(data, dict) else None
        if type(found) is not int or found != REPORT_SCHEMA_VERSION:
            raise ReportFieldError(f"report schema_version {found!r}, this mobilepack reads "
                                   f"{REPORT_SCHEMA_VERSION}; re-run `mobilepack bench` to write a current report")
        return super(Report, cls).from_json(data, strict)  # noqa: UP008 (slots=True makes a new class: no bare super())

    def row(self, name: str) -> ArtifactRow | None:
        return next((a for a in self.artifacts if a.name == name), None)


def check_schema(document: dict) -> None:
    """Refuse a report.json document that breaks report.schema.json, naming the first place it does."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(top level)"
        raise ReportFieldError(f"report.json{where}: {error.message} (report.schema.json); this is a bug in "
                               "mobilepack bench, please report it")
