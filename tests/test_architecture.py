"""The house rules of docs/architecture.md, read from the source with `ast` (nothing is imported).

- Layers: train imports nothing of ours; convert imports train; benchmarks imports train and convert;
  the front door (mobilepack) and the figure scripts may import all; nothing outside
  benchmarks/figures, tests included, imports benchmarks.figures.
- Rooms: inside benchmarks each subpackage (and top module) imports only the rooms ROOMS lists; the
  Core ML evaluator (benchmarks/coreml_reference) imports nothing of the project at all.
- No import circle between any two of the project's modules, imports inside functions included.
- At most 10 modules at benchmarks' top; no function over 6 parameters outside the exemptions.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
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


# What each room of benchmarks may import of the other rooms (train and convert always, by the layer
# rule; the Core ML evaluator never, see EVALUATOR). A room is a subpackage or a top module.
ROOMS = {
    "benchmarks.errors": set(),
    "benchmarks.row": set(),
    "benchmarks.coreml_reference": set(),
    "benchmarks.runners": {"benchmarks.errors", "benchmarks.coreml_reference"},
    "benchmarks.evaldata": {"benchmarks.errors"},
    "benchmarks.phone": set(),
    "benchmarks.parity": {"benchmarks.errors", "benchmarks.runners", "benchmarks.coreml_reference"},
    "benchmarks.latency": {"benchmarks.errors", "benchmarks.runners", "benchmarks.coreml_reference"},
    "benchmarks.arm64": {"benchmarks.errors", "benchmarks.runners", "benchmarks.parity"},
    "benchmarks.distributed": {"benchmarks.errors", "benchmarks.runners", "benchmarks.latency"},
    "benchmarks.report": {"benchmarks.errors", "benchmarks.row", "benchmarks.arm64", "benchmarks.latency",
                          "benchmarks.parity"},
    "benchmarks.gating": {"benchmarks.errors", "benchmarks.row", "benchmarks.report", "benchmarks.latency",
                          "benchmarks.parity"},
    "benchmarks.bench": {"benchmarks.errors", "benchmarks.row", "benchmarks.runners", "benchmarks.evaldata",
                         "benchmarks.phone", "benchmarks.parity", "benchmarks.latency", "benchmarks.arm64",
                         "benchmarks.distributed", "benchmarks.report", "benchmarks.gating"},
}
EVALUATOR = "benchmarks.coreml_reference"
MAX_TOP_MODULES = 10
MAX_PARAMETERS = 6


def room(module: str) -> str | None:
    """The room of a benchmarks module (benchmarks.latency.measure -> benchmarks.latency); None outside."""
    parts = module.split(".")
    if parts[0] != "benchmarks" or len(parts) < 2 or parts[1] == "figures":
        return None
    return ".".join(parts[:2])


def room_violations(root: Path) -> list[str]:
    """Every import between benchmarks' rooms that ROOMS does not allow, and any import of ours by the evaluator."""
    found = []
    for path in python_files(root):
        rel, own = path.relative_to(root).as_posix(), room(module_name(path, root))
        if own is None:
            continue
        for line, target, text in imports(path, root):
            theirs = room(target)
            if own == EVALUATOR and layer(target) is not None and theirs != EVALUATOR:
                found.append(f"{rel}:{line}: {text} (the Core ML evaluator imports nothing of mobilepack)")
            elif theirs is not None and theirs != own and theirs not in ROOMS.get(own, set()):
                allowed = ", ".join(sorted(ROOMS.get(own, set()))) or "no other room"
                found.append(f"{rel}:{line}: {text} ({own} may import only {allowed})")
    return list(dict.fromkeys(found))


def module_graph(root: Path) -> dict[str, set[str]]:
    """module -> the project's modules it imports (at any depth), each import resolved to its module file."""
    modules = {module_name(p, root): p for p in python_files(root) if layer(module_name(p, root)) is not None}
    graph = defaultdict(set)
    for name, path in modules.items():
        for _, target, _ in imports(path, root):
            while target and target not in modules:  # `from x.y import name`: the module is x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each is an import circle."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def _decorators(fn) -> list[str]:
    return [ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in fn.decorator_list]


def _exempt(rel: str, fn) -> bool:
    """click commands (their options are the parameters), numba kernels, and the evaluator's MIL op kernels,
    whose parameters are the op's attributes."""
    decorators = _decorators(fn)
    return (any(d.endswith((".command", "command_options", ".group")) for d in decorators)
            or any(d.split(".")[-1] in ("njit", "jit", "vectorize") for d in decorators)
            or rel.startswith(f"{EVALUATOR.replace('.', '/')}/mil_ops"))


def long_signatures(root: Path) -> list[str]:
    """Every function of ours with more than MAX_PARAMETERS parameters (self and cls not counted), outside
    the exemptions, as 'file:line: name (N parameters)'."""
    found = []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        if layer(module_name(path, root)) is None:
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _exempt(rel, fn):
                a = fn.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(names) > MAX_PARAMETERS:
                    found.append(f"{rel}:{fn.lineno}: {fn.name} ({len(names)} parameters)")
    return found


def test_benchmarks_rooms_keep_their_rules():
    found = room_violations(ROOT)
    assert not found, "imports against ROOMS (docs/architecture.md):\n" + "\n".join(found)


def test_rooms_table_has_no_circle():
    assert circles(ROOMS) == []


def test_no_import_circle_between_modules():
    found = circles(module_graph(ROOT))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_benchmarks_top_holds_at_most_ten_modules():
    top = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_MODULES, top
    assert set(ROOMS) >= {f"benchmarks.{p.removesuffix('.py')}" for p in top}, "every top module has a ROOMS entry"


def test_every_subpackage_says_what_it_owns_and_may_import():
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        rel = init.relative_to(ROOT)
        if rel.parts[0] not in OURS or SKIP_DIRS.intersection(rel.parts):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 20, f"{rel}: a package docstring says what it owns and may import"


def test_no_function_takes_more_than_six_parameters():
    found = long_signatures(ROOT)
    assert not found, "functions over 6 parameters:\n" + "\n".join(found)


def test_the_checkers_find_circles_rooms_and_long_signatures(tmp_path):
    root = _tree(tmp_path, {
        "convert/a.py": "from convert.b import x\n",
        "convert/b.py": "def f():\n    from convert.a import y\n",  # lazy, still a circle
        "convert/c.py": "def g(a, b, c, d, e, f, g):\n    pass\n",
        "convert/d.py": "class K:\n    def m(self, a, b, c, d, e, f):\n        pass\n",  # six and self: fine
        "benchmarks/parity/__init__.py": "",
        "benchmarks/parity/p.py": "from benchmarks.report.write import write\n",
        "benchmarks/report/__init__.py": "",
        "benchmarks/report/write.py": "from benchmarks.parity import p\n",
        "benchmarks/coreml_reference/__init__.py": "",
        "benchmarks/coreml_reference/m.py": "from . import n\nfrom train.errors import MobilepackError\n",
        "benchmarks/coreml_reference/n.py": "import numpy\n",
    })
    assert circles(module_graph(root)) == [["benchmarks.parity.p", "benchmarks.report.write"],
                                           ["convert.a", "convert.b"]]
    assert [v.split(" (")[0] for v in room_violations(root)] == [
        "benchmarks/coreml_reference/m.py:2: from train.errors import MobilepackError",
        "benchmarks/parity/p.py:1: from benchmarks.report.write import write",
    ]
    assert long_signatures(root) == ["convert/c.py:1: g (7 parameters)"]
