"""The import rule of docs/architecture.md, read from the source with `ast` (nothing is imported).

train imports nothing of ours; convert imports train; benchmarks imports train and convert; the
front door (mobilepack) and the figure scripts may import all; nothing outside benchmarks/figures,
tests included, imports benchmarks.figures.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = "benchmarks.figures"
OURS = ("train", "convert", "benchmarks", "mobilepack")
MAY_IMPORT = {
    "train": {"train"},
    "convert": {"train", "convert"},
    "benchmarks": {"train", "convert", "benchmarks"},
    "mobilepack": {"train", "convert", "benchmarks", "mobilepack"},
    FIGURES: {"train", "convert", "benchmarks", "mobilepack", FIGURES},
}
# `python -m convert` is `mobilepack convert` (DESIGN.md): a process entry point that nothing imports,
# so its import of the front door adds no edge between the layers.
ENTRY_POINTS = {"convert/__main__.py": {"mobilepack"}}
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "runs", "node_modules", "__pycache__"}


def layer(module: str) -> str | None:
    """The layer a dotted module name belongs to; None when it is not ours."""
    if module == FIGURES or module.startswith(FIGURES + "."):
        return FIGURES
    top = module.split(".")[0]
    return top if top in OURS else None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[tuple[int, str, str]]:
    """(line, imported module, source text) for every import in `path`, at any depth.

    `from X import a` yields X.a: `a` may be a submodule (`from benchmarks import figures`).
    Relative imports are resolved against the file's package.
    """
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))

    def text(node) -> str:
        return " ".join(ast.get_source_segment(source, node).split())  # a multi-line import on one line

    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, text(node)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*up, *([node.module] if node.module else [])])
            found += [(node.lineno, base if alias.name == "*" else f"{base}.{alias.name}", text(node))
                      for alias in node.names]
        elif isinstance(node, ast.Call) and _literal_import(node):
            found.append((node.lineno, node.args[0].value, text(node)))
    return sorted(found)


def _literal_import(node: ast.Call) -> bool:
    """importlib.import_module("x") or __import__("x") with a literal name."""
    fn = node.func
    name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
    return (name in ("import_module", "__import__") and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def python_files(root: Path):
    for path in sorted(root.rglob("*.py")):
        if not SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


def violations(root: Path) -> list[str]:
    """Every import that breaks the rule, as 'file:line: import (why)'."""
    found = []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        own = layer(module_name(path, root))
        allowed = MAY_IMPORT.get(own, set()) | ENTRY_POINTS.get(rel, set())
        for line, target, text in imports(path, root):
            theirs = layer(target)
            if theirs is None or theirs == own:
                continue
            if theirs == FIGURES:
                why = "nothing outside benchmarks/figures imports the figure scripts"
            elif own is not None and theirs not in allowed:
                why = f"{own} may import only {', '.join(sorted(MAY_IMPORT[own] - {own})) or 'nothing of ours'}"
            else:
                continue
            found.append(f"{rel}:{line}: {text} ({why})")
    return list(dict.fromkeys(found))  # `from x import a, b` is one offence, not two


def test_the_code_keeps_the_import_rule():
    found = violations(ROOT)
    assert not found, "imports against docs/architecture.md:\n" + "\n".join(found)


def test_every_package_is_checked():
    assert {module_name(p, ROOT).split(".")[0] for p in python_files(ROOT)} >= set(OURS)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for package in ("train", "convert", "benchmarks", "benchmarks/figures", "mobilepack"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_the_checker_finds_each_kind_of_violation(tmp_path):
    root = _tree(tmp_path, {
        "train/a.py": "def f():\n    from convert.api import convert\n",  # inside a function
        "train/b.py": "from ..benchmarks import bench\n",  # relative, resolved to benchmarks
        "convert/c.py": "import benchmarks.report.write\n",
        "benchmarks/d.py": "from . import report\nfrom mobilepack import cli\n",
        "benchmarks/e.py": "from benchmarks import figures\n",
        "mobilepack/f.py": "import importlib\nimportlib.import_module('benchmarks.figures.x')\n",
        "tests/test_g.py": "from benchmarks.figures.x import helper\n",
    })
    found = violations(root)
    assert [f.split(" (")[0] for f in found] == [
        "benchmarks/d.py:2: from mobilepack import cli",
        "benchmarks/e.py:1: from benchmarks import figures",
        "convert/c.py:1: import benchmarks.report.write",
        "mobilepack/f.py:2: importlib.import_module('benchmarks.figures.x')",
        "tests/test_g.py:1: from benchmarks.figures.x import helper",
        "train/a.py:2: from convert.api import convert",
        "train/b.py:1: from ..benchmarks import bench",
    ], found


def test_the_checker_accepts_the_allowed_imports(tmp_path):
    root = _tree(tmp_path, {
        "train/a.py": "from . import errors\nimport numpy\n",
        "convert/b.py": "from train.fsutil import atomic_write_json\n",
        "convert/__main__.py": "from mobilepack.cli.main import convert_main\n",
        "benchmarks/c.py": "from convert.manifest import load_manifest\nfrom .report import text_table\n",
        "benchmarks/figures/d.py": "from mobilepack.judge import validation_judge\nfrom .e import figure\n",
        "mobilepack/f.py": "from benchmarks.bench import run_bench\nfrom train.trainer import train\n",
        "tests/test_g.py": "from mobilepack.cli.main import cli\nfrom benchmarks.runners import LiteRTRunner\n",
    })
    assert violations(root) == []
