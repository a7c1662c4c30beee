"""The budget search on Ray: the families' ladders, and the rungs of a ladder, converted and judged concurrently.

A local search (convert/budget.py) walks each family's ladder in order and stops at the first
candidate within budget. Here Ray workers convert and judge candidates ahead of that walk, as many
at a time as there are workers, earliest rungs first; the walk itself is the local one (`choose` over
`rungs`), fed with the workers' results. So the chosen artifacts, the search trail, the log lines and
the error a run ends with are a local run's: a result the walk never reaches is dropped, and only the
chosen candidate's bytes come back and are written into the output.

Workers get the Keras file as bytes with its sha256 (loaded with the same --unsafe-load,
--custom-objects and --input-shape), and the calibration and validation data through the object
store. A worker that dies is restarted and its candidate redone (`max_restarts`, `max_task_retries`).
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.errors import ExecutorError
from benchmarks.distributed.ray_executor import _first_line, artifact_bytes
from convert.budget import Budget
from convert.search import Ladder, Rung, choose, family_result, ladder_families, rungs
from convert.calibration import CalibrationSet
from convert.config import ConvertConfig
from convert.context import ConversionContext
from convert.manifest import Artifact
from train.errors import MobilepackError
from train.fsutil import atomic_write_bytes
from train.loading import sha256_file
from train.preprocessing import Preprocessing

from mobilepack.judge import Validation


@dataclass(frozen=True)
class SearchInputs:
    """What a worker needs besides the model's bytes to convert and judge any candidate: our own plain data."""

    model_name: str  # the file's name: its suffix says how Keras reads it
    model_sha256: str
    config: ConvertConfig
    image_input: bool
    prep: Preprocessing | None
    labels: list | None
    calibration: CalibrationSet | None
    metadata: dict
    w8a8_ranges: bool  # whether the context had the Core ML evaluator's activation ranges
    validation: Validation
    budget: Budget


@dataclass
class RungResult:
    artifact: Artifact
    outputs: list  # the validation figures per output
    within: bool
    blob: bytes | None  # the artifact's bytes (an .mlpackage as a tar): only for a candidate within budget
    refinements: list | None = None  # the rungs after a missed ranked one, worst parts float
    ranking_error: BaseException | None = None  # what ranking raised: raised when the walk gets there


class SearchWorker:
    """Loads the model once, then converts and judges one rung per call, like Ladder.build and Validation."""

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._inputs, self._ctx = None, None
        self._ladders: dict = {}

    def _context(self, holders: tuple) -> ConversionContext:
        """Built at the first call, not in __init__: what fails here (a --custom-objects module this node
        cannot import) is then that call's error, one line on the command line."""
        import ray

        from convert.shapes import load_fixed

        if self._ctx is not None:
            return self._ctx
        self._inputs = inputs = ray.get(holders[0][0])
        folder = Path(tempfile.mkdtemp(prefix="mobilepack-search-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / inputs.model_name
        path.write_bytes(ray.get(holders[1][0]))
        if sha256_file(path) != inputs.model_sha256:
            raise ExecutorError(f"{inputs.model_name}: the bytes a Ray worker received do not hash to the model's "
                                "sha256; re-run convert (the object store or the network damaged them)")
        cfg = inputs.config
        model = load_fixed(path, cfg.unsafe_load, cfg.custom_objects, cfg.input_shapes)
        ranges = None
        if inputs.w8a8_ranges:
            from benchmarks.runners import activation_ranges as ranges
        (folder / "stage").mkdir()
        self._ctx = ConversionContext(model=model, model_path=path, config=cfg, stage=folder / "stage",
                                      image_input=inputs.image_input, prep=inputs.prep, labels=inputs.labels,
                                      calibration=inputs.calibration, metadata=inputs.metadata, activation_ranges=ranges)
        return self._ctx

    def run(self, holders: tuple, target: str, fmt: str, rung: Rung) -> RungResult:
        """holders: the search inputs and the model's bytes as nested references, fetched by the first call only. Every
        call carries them, not the constructor: a restarted worker gets them from its retried call, and Ray
        warns on the console about restartable actors whose constructor arguments live in the object store."""
        ctx = self._context(holders)
        ladder = self._ladders.setdefault((target, fmt), Ladder(ctx, target, fmt))
        artifact = ladder.build(rung)
        path = artifact.path(ctx.stage)
        try:
            outputs = self._inputs.validation(path, artifact.target)
            within = self._inputs.budget.check(outputs)[0]
            result = RungResult(artifact, outputs, within, artifact_bytes(path) if within else None)
        finally:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if not within and ladder.ranked(rung):  # ranked as a local search would, once the rung has missed
            try:
                result.refinements = ladder.refinements(rung)
            except MobilepackError as exc:
                result.ranking_error = exc
        return result


class RaySearch:
    """convert(..., search=RaySearch(validation, workers)): the budget search on Ray, a local run's result."""

    def __init__(self, validation: Validation, workers: int):
        self.validation, self.workers = validation, workers

    def __call__(self, ctx: ConversionContext, log) -> tuple[list[Artifact], list]:
        import ray

        budget = ctx.config.budget()
        families = [Ladder(ctx, target, fmt) for target, fmt in ladder_families(ctx.config)]  # bases only, here
        inputs = SearchInputs(ctx.model_path.name, sha256_file(ctx.model_path), ctx.config, ctx.image_input, ctx.prep,
                              ctx.labels, ctx.calibration, ctx.metadata, ctx.activation_ranges is not None,
                              self.validation, budget)
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(SearchWorker)
        holders = [ray.put(inputs)], [ray.put(artifact_bytes(ctx.model_path))]  # put once, for every worker
        scheduler = Scheduler(ray, [actor.remote() for _ in range(self.workers)], families, holders)
        # Candidates the walk did not need may still be running at the end: the workers exit when their handles
        # go out of scope, once that call returns (a kill would have Ray retry the call, and say so on the console).
        chosen, failed = [], []
        for i, ladder in enumerate(families):
            log(f"searching {ladder.fmt} within {budget.describe()}")
            family_result(ladder.target, ladder.fmt, lambda i=i: choose(
                ladder.fmt, rungs(RemoteLadder(scheduler, i, ctx.stage)), ctx.stage, budget, log), chosen, failed)
        return chosen, failed


class RemoteLadder:
    """A Ladder whose build() returns a worker's (artifact, figures), for `rungs` and `choose`."""

    def __init__(self, scheduler: "Scheduler", family: int, stage: Path):
        self._s, self._family, self._stage = scheduler, family, stage
        self.bases = scheduler.families[family].bases

    def build(self, rung: Rung):
        result = self._s.result(self._family, rung)
        if result.blob is not None:  # within budget: the walk chooses it, so it is written here
            _write(self._stage, result.artifact, result.blob)
        return result.artifact, result.outputs

    def refinements(self, rung: Rung) -> list[Rung]:
        if not self._s.families[self._family].ranked(rung):
            return []
        result = self._s.result(self._family, rung)
        if result.ranking_error is not None:
            raise result.ranking_error
        return result.refinements


class Scheduler:
    """Keeps every worker busy with the earliest rungs no family has yet decided past."""

    def __init__(self, ray, actors: list, families: list[Ladder], holders: tuple):
        self._ray, self._free, self.families, self._holders = ray, list(actors), families, holders
        # (position in the ladder, position among its refinements, family): ladder order, families interleaved
        self._queue = [((b, 0, f), f, rung) for f, ladder in enumerate(families) for b, rung in enumerate(ladder.bases)]
        self._keys: dict = {}  # (family, label) -> its priority key
        self._results: dict = {}  # (family, label) -> RungResult or the exception its build raised
        self._running: dict = {}  # ObjectRef -> (family, rung, actor)

    def result(self, family: int, rung: Rung) -> RungResult:
        while (family, rung.label) not in self._results:
            self._step()
        got = self._results[family, rung.label]
        if isinstance(got, BaseException):
            raise got
        return got

    def _step(self) -> None:
        self._queue.sort(key=lambda q: q[0])
        for item in [q for q in self._queue if not self._needed(*q)]:
            self._queue.remove(item)
        while self._free and self._queue:
            key, family, rung = self._queue.pop(0)
            self._keys[family, rung.label] = key
            actor = self._free.pop()
            ladder = self.families[family]
            self._running[actor.run.remote(self._holders, ladder.target, ladder.fmt, rung)] = (family, rung, actor)
        if not self._running:
            raise RuntimeError("the budget search waits for a candidate no worker runs")  # a scheduler bug
        [ref], _ = self._ray.wait(list(self._running), num_returns=1)
        family, rung, actor = self._running.pop(ref)
        self._free.append(actor)
        self._results[family, rung.label] = got = self._get(ref)
        if isinstance(got, RungResult) and got.refinements:
            b = self._keys[family, rung.label][0]
            self._queue += [((b, k, family), family, r) for k, r in enumerate(got.refinements, 1)]

    def _needed(self, key, family: int, rung: Rung) -> bool:
        """False once an earlier rung of the family is within budget or failed: the walk stops there."""
        for (f, label), got in self._results.items():
            if f == family and self._keys[f, label] < key and (isinstance(got, BaseException) or got.within):
                return False
        return True

    def _get(self, ref):
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:  # a call that raised, or a worker Ray could not keep alive
            cause = getattr(exc, "cause", None)
            if isinstance(cause, (MobilepackError, OSError)):
                return cause  # the converter's own one-line error, as a local run raises it
            return ExecutorError(f"a Ray worker failed: {_first_line(exc)}; run with --executor local to see it here")


def _write(stage: Path, artifact: Artifact, blob: bytes) -> None:
    """The chosen candidate's bytes into the output, under a temporary name renamed into place, then checked."""
    path = artifact.path(stage)
    if artifact.file.endswith(".mlpackage"):
        folder = Path(tempfile.mkdtemp(prefix=".incoming-", dir=stage))
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(folder, filter="data")
        os.replace(folder / artifact.file, path)
        shutil.rmtree(folder)
    else:
        atomic_write_bytes(path, blob)
    got = sha256_file(path)
    if got != artifact.sha256:
        raise ExecutorError(f"{artifact.file}: the bytes from the Ray worker hash to {got[:12]}..., the worker "
                            f"wrote {artifact.sha256[:12]}...; re-run convert (the object store or network damaged them)")

