"""The demo pipeline: train (digits) -> convert (every TFLite and Core ML variant) -> bench."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from benchmarks.bench import BenchConfig, run_bench
from convert.api import ConvertConfig, convert
from train.trainer import TrainConfig, train


def run_demo(out: Path, run_dir: Path, train_config: TrainConfig, convert_config: ConvertConfig,
             bench_config: BenchConfig, log: Callable[[str], None] = print, progress=None,
             verbose: int = 1) -> dict:
    log(f"== 1/3 train -> {run_dir}")
    train(train_config, run_dir, log=log, verbose=verbose)
    log(f"== 2/3 convert -> {out}")
    judge = None
    if convert_config.budgeted:
        from mobilepack.search import validation_judge

        judge = validation_judge(run_dir, convert_config.budget(), log=log)
    convert(run_dir, out, convert_config, log=log, judge=judge, progress=progress)
    log(f"== 3/3 bench {out}")
    return run_bench(out, bench_config, log=log, progress=progress)
