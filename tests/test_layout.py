"""The package's layout rules, checked by reading the source with ``ast`` (nothing is imported).

* No import cycle among fcnlab modules. Module-level imports never form one. An import inside a function
  defers a heavy or optional dependency (torch for light commands, onnxruntime, tensorboard); it may close a
  loop only where :data:`LAZY_CYCLE_EDGES` names it (the edge runs after both modules are loaded), so the
  graph of all imports minus those edges has no cycle either. ``if TYPE_CHECKING:`` imports do not count.
* Stages only import downwards: a module of a stage in :data:`STAGES` imports nothing from a later stage,
  except the function-level imports named in :data:`UPWARD_EDGES`.
* No module over 400 lines.
* Inference (``fcnlab.infer``) imports nothing from training (``fcnlab.training``), at any level.
* ``fcnlab.bench`` stays inside the installed package (no path into the source checkout's ``benchmarks/``).
* Task names are compared (``== "classify"``, ``!= "segment"``, ``in ("classify", ...)``) only in the task
  package, the config and the CLI's parsing; elsewhere code asks the task (:mod:`fcnlab.tasks`).
* No subpackage or module is named like a public API function (``fcnlab.train`` would shadow the function).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fcnlab"
MAX_LINES = 400
TASK_NAMES = {"classify", "segment"}
#: Where comparing task names is the job: the task package, config validation and the CLI's parsing.
TASK_NAME_HOMES = ("tasks/", "config/", "cli/")
#: Function-level imports allowed to close a loop: the registry's build_model loads ImageNet weights through
#: pretrained.py, which looks models up in the registry.
LAZY_CYCLE_EDGES = {("fcnlab.models.registry", "fcnlab.models.pretrained")}
#: The pipeline stages, lowest first: leaves every stage may use, then data -> models -> tasks -> training ->
#: inference -> evaluation -> report, then the front doors. A module belongs to the stage of its first name
#: under fcnlab (``fcnlab.training.loop`` -> ``training``).
STAGES = (
    "errors",
    "runtime",
    "taskinfo",
    "recipes",
    "config",
    "runs",
    "data",
    "models",
    "checkpoint",
    "tasks",
    "training",
    "infer",
    "evaluate",
    "report",
    "bench",
    "api",
    "demo",
    "reproduce",
    "cli",
    "__main__",
)
#: Imports that run up the stages, each inside a function (so both modules are loaded by then) and each
#: with its reason. Remove an entry when its import goes; adding one needs the same kind of reason.
UPWARD_EDGES = {
    # validation names an unknown model with the registry's list; the registry imports torch
    ("fcnlab.config.checks", "fcnlab.models"),
    # training's mask snapshots and predicted overlays are drawn with the report's palette figures
    ("fcnlab.training.snapshots", "fcnlab.report.viz"),
    ("fcnlab.infer.folders", "fcnlab.report.viz"),
    # the demo runs the CLI's commands in-process
    ("fcnlab.demo.run", "fcnlab.cli.main"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(package: Path = PACKAGE) -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(package.rglob("*.py"))}


def imported(tree: ast.Module, name: str, top_level_only: bool, modules: set[str]) -> set[str]:
    """fcnlab modules imported by module ``name`` (``from pkg import sub`` counts ``pkg.sub`` if a module)."""
    type_checking = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if id(node) in type_checking:  # not run
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fcnlab")}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{name}: relative import; fcnlab imports absolutely"
            base = node.module or ""
            if not base.startswith("fcnlab"):
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    found = {m for m in found if m in modules}
    # importing a.b.c runs a/__init__ and a/b/__init__ too, except the packages `name` itself is inside
    # (they are being imported already when `name` runs)
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)} | {name}
    return (found | {p for p in parents if p in modules}) - own


def import_graph(top_level_only: bool = True, package: Path = PACKAGE) -> dict[str, set[str]]:
    src = sources(package)
    modules = set(src)
    return {name: imported(tree, name, top_level_only, modules) for name, (_, tree) in src.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_function_level_imports_close_no_other_cycle():
    graph = import_graph(top_level_only=False)
    for a, b in LAZY_CYCLE_EDGES:
        graph[a].discard(b)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def stage_of(module: str) -> int | None:
    """Index of ``module``'s stage in :data:`STAGES` (None for the package itself)."""
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where a module imports a module of a later stage (packages imported only
    as the parents of a module imported are not counted twice)."""
    found = set()
    for a, deps in graph.items():
        for b in deps:
            sa, sb = stage_of(a), stage_of(b)
            parent_only = any(d.startswith(b + ".") for d in deps)
            if sa is not None and sb is not None and sb > sa and not parent_only:
                found.add((a, b))
    return found


def test_every_module_has_a_stage():
    assert not [m for m in sources() if "." in m and m.split(".")[1] not in STAGES]


def test_stages_import_only_downwards():
    top = import_graph()
    upward = upward_imports(import_graph(top_level_only=False))
    assert not {e for e in upward if e[1] in top[e[0]]}, "a module-level import runs up the stages"
    assert upward <= UPWARD_EDGES, f"imports up the stages (move the code down or ask for it): {upward - UPWARD_EDGES}"
    assert UPWARD_EDGES <= upward, f"gone, remove from UPWARD_EDGES: {UPWARD_EDGES - upward}"


def test_the_stage_check_finds_an_upward_import():
    graph = {"fcnlab.data.x": {"fcnlab.training", "fcnlab.training.loop"}, "fcnlab.training.loop": {"fcnlab.data.x"}}
    assert upward_imports(graph) == {("fcnlab.data.x", "fcnlab.training.loop")}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {lines} lines; split it by job (at most {MAX_LINES})"


def test_inference_imports_no_training_code():
    graph = import_graph(top_level_only=False)
    bad = {
        m: sorted(d for d in deps if d.startswith("fcnlab.training"))
        for m, deps in graph.items()
        if m.startswith("fcnlab.infer")
    }
    assert not {m: d for m, d in bad.items() if d}


def test_bench_stays_inside_the_package():
    for path in sorted((PACKAGE / "bench").rglob("*.py")):
        assert "benchmarks" not in {
            getattr(n, "value", None) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
        }, f"{path}: reaches into benchmarks/"


def task_name_comparisons(tree: ast.Module) -> list[int]:
    """Line numbers of comparisons of anything with a task-name string (or a tuple/list/set of them)."""

    def is_task_name(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in TASK_NAMES
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_task_name(e) for e in node.elts)
        return False

    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Compare) and any(is_task_name(x) for x in [n.left, *n.comparators])
    ]


def test_task_names_are_compared_only_where_tasks_are_defined_or_parsed():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(TASK_NAME_HOMES):
            continue
        lines = task_name_comparisons(ast.parse(path.read_text()))
        if lines:
            found[rel] = lines
    assert not found, f"task-name branches outside fcnlab.tasks (ask the task instead): {found}"


def test_the_task_name_check_finds_a_branch():
    assert task_name_comparisons(ast.parse('if cfg.task == "segment":\n    pass\nx = t in ("classify",)')) == [1, 3]
    assert task_name_comparisons(ast.parse('steps = ["classify", "train"]')) == []


def test_no_module_shadows_an_api_function():
    api = ast.parse((PACKAGE / "__init__.py").read_text())
    names = next(
        ast.literal_eval(n.value)
        for n in api.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "API" for t in n.targets)
    )
    clash = sorted(
        set(names)
        & {
            p.stem if p.name != "__init__.py" else p.parent.name
            for p in PACKAGE.iterdir()
            if p.suffix == ".py" or (p / "__init__.py").is_file()
        }
    )
    assert not clash, f"fcnlab.{clash[0]} would rebind the API function of that name when imported"
