"""The package's layers, kept by its import graph: an inner layer never imports an outer one.

core (records, files, bench, prompts, the judge's spec, scoring) < judging (the job, its calls,
the Batch API's files, cost, `execute`) < engine (generation) = clients (judge clients) < outputs
(views, plot, report, cards, official data) < integrations (evaluate metric, inspect) < pipeline
(`run`) < cli. Judging is handed a client through core's protocol and never imports one; the
engine and the clients are one level: the endpoint engine answers through the OpenAI client, and
the local judge decodes with the hf engine.
Every import counts, module-level or inside a function, `TYPE_CHECKING` ones included.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mt_bench_task"
RANK = {"core": 0, "judging": 1, "engine": 2, "clients": 2, "outputs": 3, "integrations": 4,
        "pipeline": 5, "cli": 6}


def layer_of(module: str) -> str | None:
    """'mt_bench_task.core.bench' -> 'core'; the package root (`mt_bench_task`) has no layer."""
    parts = module.split(".")
    if parts[0] != "mt_bench_task" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in RANK else None


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved."""
    package = list(path.relative_to(root.parent).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from mt_bench_task import outputs` imports a layer by name
            if module == "mt_bench_task":
                found += [(node.lineno, f"mt_bench_task.{a.name}") for a in node.names]
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of(".".join(path.relative_to(root.parent).with_suffix("").parts))
        if own is None:
            continue
        for line, module in imports_of(path, root):
            other = layer_of(module)
            if other is not None and RANK[other] > RANK[own]:
                bad.append(f"{path.relative_to(root.parent)}:{line}: {own} imports {module}")
    return bad


def test_no_inner_layer_imports_an_outer_one():
    assert violations() == []


def test_every_module_is_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "pipeline")]
    assert loose == [], "modules outside the layer packages: " + ", ".join(loose)


@pytest.mark.parametrize("statement", [
    "from mt_bench_task.outputs.plot import radar_plot",
    "import mt_bench_task.cli.main",
    "from mt_bench_task import integrations",
    "    from mt_bench_task.clients import make_client",  # inside a function
])
def test_the_check_sees_a_core_module_importing_an_outer_one(tmp_path, statement):
    root = tmp_path / "mt_bench_task"
    (root / "core").mkdir(parents=True)
    body = f"def f():\n{statement}\n" if statement.startswith(" ") else statement + "\n"
    (root / "core" / "bad.py").write_text(body)
    (root / "core" / "fine.py").write_text("from mt_bench_task.core import types\n")
    found = violations(root)
    assert len(found) == 1 and found[0].startswith("mt_bench_task/core/bad.py:")


@pytest.mark.parametrize("statement", [
    "from mt_bench_task.clients.openai_client import OpenAIChatClient",
    "from mt_bench_task.engine import judge",
    "from mt_bench_task.outputs.calibration import run_calibration",
])
def test_the_check_sees_judging_importing_a_client_or_an_outer_layer(tmp_path, statement):
    root = tmp_path / "mt_bench_task"
    (root / "judging").mkdir(parents=True)
    (root / "judging" / "bad.py").write_text(statement + "\n")
    (root / "judging" / "fine.py").write_text("from mt_bench_task.core.chat import ChatClient\n")
    (root / "core").mkdir()
    (root / "core" / "bad.py").write_text("from mt_bench_task.judging.job import JudgingJob\n")
    found = violations(root)
    assert sorted(f.split(":")[0] for f in found) == ["mt_bench_task/core/bad.py",
                                                      "mt_bench_task/judging/bad.py"]


# ---- import cycles ----
def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST, package: list[str]) -> list[tuple[str, list[str]]]:
    """(module, names) for every import that can run: at module level or inside a function,
    those under `if TYPE_CHECKING:` left out (their `else:` counts)."""
    found: list[tuple[str, list[str]]] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo += node.orelse
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((module, [a.name for a in node.names]))
        todo += ast.iter_child_nodes(node)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (`from pkg import mod` imports pkg.mod)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = (path, parts[:-1] if not is_package else parts)
    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        edges = set()
        for module, names in runtime_imports(ast.parse(path.read_text(encoding="utf-8")), package):
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            edges |= set(subs) if subs and len(subs) == len(names) else (
                set(subs) | ({module} if module in modules else set()))
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles_lazy_imports_included():
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import_and_skips_type_checking(tmp_path):
    root = tmp_path / "mt_bench_task"
    (root / "engine").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "engine" / "__init__.py").write_text("")
    (root / "engine" / "a.py").write_text("from mt_bench_task.engine.b import f\n")
    (root / "engine" / "b.py").write_text("def f():\n    from mt_bench_task.engine import a\n")
    (root / "engine" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mt_bench_task.engine import d\n")
    (root / "engine" / "d.py").write_text("from . import c\n")
    assert cycles(import_graph(root)) == [["mt_bench_task.engine.a", "mt_bench_task.engine.b"]]
    (root / "engine" / "c.py").write_text("def g():\n    from mt_bench_task.engine import d\n")
    assert cycles(import_graph(root)) == [["mt_bench_task.engine.a", "mt_bench_task.engine.b"],
                                          ["mt_bench_task.engine.c", "mt_bench_task.engine.d"]]
