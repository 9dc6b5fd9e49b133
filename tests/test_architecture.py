"""The layering stays true: no import cycle among the project's modules, each layer imports only
the layers below it, and the commands that read runs start without torch.

Imports are read from the source with ``ast``, those inside functions included (a lazy import
that closes a cycle is still a cycle of the design). Data-free: runs without ``../shared``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("face_alignment", "backbones", "benchmark")

#: layers, lowest first: a module may import its own layer and those listed before it
LAYERS = [
    ("face_alignment",),
    ("backbones",),
    ("benchmark.protocol",),
    ("benchmark.report",),
    ("benchmark.leaderboard",),
    ("benchmark.run",),
    ("benchmark.fetch", "benchmark.speed", "benchmark.scale", "benchmark.api", "benchmark.cli", "benchmark.__main__",
     "benchmark"),
]


def _modules() -> dict[str, Path]:
    """Every module of the project's packages by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its source; the packages it sits in are
    left out (Python has them half-initialised already when the module runs)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            targets.add(stem)
            targets.update(f"{stem}.{alias.name}" for alias in node.names)  # `from pkg import module`
    edges = set()
    for target in targets:
        parts = target.split(".")
        for end in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            module = ".".join(parts[:end])
            if module in modules and module != name and not name.startswith(module + "."):
                edges.add(module)
    return edges


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_graph_sees_the_projects_imports(graph):
    """The reader finds imports of every kind, or the tests below would pass on nothing."""
    assert "benchmark.protocol.pairs" in graph["benchmark.protocol.scores"]  # from .pairs import
    assert "benchmark.run.cache" in graph["benchmark.run.runner"]  # from .cache import
    assert "benchmark.report.compare" in graph["benchmark.cli"]  # from .report import compare
    assert "face_alignment.registry" in graph["face_alignment.detectors.yunet"]  # from ..registry import
    assert len(graph) > 50


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles(graph):
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _layer(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def test_each_layer_imports_only_the_layers_below(graph):
    upward = [f"{module} -> {target}" for module, targets in graph.items() for target in targets
              if _layer(target) > _layer(module)]
    assert not upward, "imports of a higher layer:\n" + "\n".join(sorted(upward))


def _torch_imported(code: str) -> bool:
    probe = code + "\nimport sys\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1] == "True"


def test_help_and_the_run_readers_start_without_torch():
    assert not _torch_imported("from benchmark.cli import build_parser\nbuild_parser().format_help()")
    assert not _torch_imported("import benchmark.report.compare, benchmark.report.plots, benchmark.report.summary, "
                               "benchmark.leaderboard.copies")
    assert not _torch_imported("import backbones, face_alignment\nbackbones.BACKENDS")
    assert _torch_imported("import backbones\nbackbones.Embedder")  # the probe can see torch where it is loaded
