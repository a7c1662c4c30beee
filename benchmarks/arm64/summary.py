"""How report.md and report.html show the ARM64 column (numerics against the host, never a time) and the
figures a phone's benchmark_model brought back (their own lines, never mixed with the host's).

Each function reads a benchmarks.row.Report (`report`) or a row's Arm64Block (`block`) by attribute; this
room does not import benchmarks.row (see ROOMS in tests/test_architecture.py), so the types are named here.
"""

from __future__ import annotations

ARM64_COLUMN = "ARM64 (emulated Cortex-A76)"


def arm64_cell(block) -> str:
    """One row's ARM64 cell: agreement with the host's run of the same file, and identical or max error."""
    if not block:
        return "-"
    if block.error:
        return "error"
    agree = "" if block.agreement_vs_host is None else f"agree {block.agreement_vs_host:.3f}, "
    return (f"{agree}{block.bit_identical}/{block.elements} identical, "
            f"max err {block.max_abs_error_vs_host:.1e}")


def with_arm64(head: list[str], rows: list[list[str]], report) -> tuple[list[str], list[list[str]]]:
    """The table with the ARM64 column before 'status' when the emulated pass ran."""
    if (report.arm64 or {}).get("status") != "measured":
        return head, rows
    cells = [arm64_cell(a.arm64) for a in report.artifacts]
    return head[:-1] + [ARM64_COLUMN, head[-1]], [r[:-1] + [c, r[-1]] for r, c in zip(rows, cells)]


def arm64_lines(report) -> list[str]:
    """What the ARM64 section says: the one-line reason it was skipped, or each row's figures."""
    summary = report.arm64
    if not summary:
        return []
    if summary["status"] != "measured":
        return [summary["note"]]
    lines = []
    for a in report.artifacts:
        b = a.arm64
        if not b:
            continue
        if b.error:
            lines.append(f"`{a.name}`: the ARM64 build refused it: {b.error}")
            continue
        ref = "" if b.agreement_vs_reference is None else f"agreement {b.agreement_vs_reference:.4f}, "
        host = "" if b.agreement_vs_host is None else f"agreement {b.agreement_vs_host:.4f}, "
        lines.append(f"`{a.name}`: vs the host's run of the same file: {host}max abs error "
                     f"{b.max_abs_error_vs_host:.2e}, {b.bit_identical}/{b.elements} output values "
                     f"bit-identical; vs Keras: {ref}max abs error {b.max_abs_error_vs_reference:.2e}")
    return lines


def arm64_intro(report) -> str:
    summary = report.arm64
    return (f"LiteRT's aarch64 build on an emulated {summary['cpu'].replace(' (emulated)', '')} (qemu-user, "
            f"-cpu {summary['qemu_cpu']}), the kernels a phone runs, on the first {summary['samples']} inputs. "
            "Numerics only: the emulator's speed says nothing about a phone's, so no latency comes from it.")


def device_lines(report) -> list[str]:
    """One line per artifact and phone run: the phone, the delegate and threads, benchmark_model's figures."""
    lines = []
    for a in report.artifacts:
        d = a.device
        for run in d.runs if d else []:
            how = {"gpu": "GPU delegate", "nnapi": "NNAPI delegate"}.get(run.delegate, f"CPU, {run.threads} thread(s)")
            std = "" if run.std_ms is None else f" (std {run.std_ms:.3f}, {run.count} runs)"
            mem = run.memory
            memory = "" if not mem else (f"; {'peak memory' if mem.kind == 'peak' else 'memory delta'} "
                                         f"{mem.overall_mb:.1f} MB")
            lines.append(f"`{a.name}` on {d.model or 'unknown phone'} (Android {d.android or '?'}), {how}: "
                         f"mean {run.mean_ms:.3f} ms{std}, init {run.init_ms:.3f}, first {run.first_ms:.3f}, "
                         f"warm-up {run.warmup_ms:.3f} ms{memory} [{run.log}]")
    return lines
