"""The demo pipeline: train (digits) -> convert (every TFLite and Core ML variant) -> bench."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks.bench import BenchConfig, run_bench
from convert.api import ConvertConfig, RuntimeHooks, convert
from train.trainer import TrainConfig, train


@dataclass(frozen=True)
class Demo:
    out: Path  # the dist folder
    run_dir: Path
    train: TrainConfig
    convert: ConvertConfig
    bench: BenchConfig


def run_demo(demo: Demo, log: Callable[[str], None] = print, progress=None, verbose: int = 1) -> dict:
    log(f"== 1/3 train -> {demo.run_dir}")
    train(demo.train, demo.run_dir, log=log, verbose=verbose)
    log(f"== 2/3 convert -> {demo.out}")
    judge = None
    if demo.convert.budgeted:
        from mobilepack.judge import validation_judge

        judge = validation_judge(demo.run_dir, demo.convert.budget(), log=log)
    from benchmarks.runners import activation_ranges

    convert(demo.run_dir, demo.out, demo.convert, log=log, progress=progress,
            hooks=RuntimeHooks(judge=judge, activation_ranges=activation_ranges))
    log(f"== 3/3 bench {demo.out}")
    return run_bench(demo.out, demo.bench, log=log, progress=progress)
