"""The layering of DESIGN section 2 holds: imports go down, never up or sideways, and there is no cycle.

Layers, bottom to top: core -> frameworks -> backends -> measure -> passes -> run -> report / package -> cli,
benchmarks above all. Every import counts, at module level or inside a function, and so does a
"module:attr" string in a table (the registry's way of importing later).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compressor", "backends", "benchmarks", "samples")
CORE = {"errors", "formats", "artifact", "data", "data_checks", "data_text", "metrics", "cache", "code"}
RANKS = {"core": 0, "frameworks": 1, "backends": 2, "measure": 3, "passes": 4, "run": 5, "report": 6, "package": 6,
         "cli": 7, "api": 7, "samples": 8, "benchmarks": 9}
STRING_REF = re.compile(r"^((?:compressor|backends|benchmarks|samples)(?:\.\w+)+):\w+$")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("backends", "benchmarks", "samples"):
        return parts[0]
    if module == "compressor":
        return "api"
    if parts[1] in CORE:
        return "core"
    return parts[1]


def technique(module: str) -> str | None:
    """The technique folder of a pass module (prune, quantize, ...); None for the passes root."""
    parts = module.split(".")
    if parts[:2] == ["compressor", "passes"] and len(parts) > 3:
        return parts[2]
    return None


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int, str]]:
    """(imported module, line, how) for every import of a project module in ``path``.

    ``how`` is "import", "string" (a "module:attr" table entry) or "typing" (under TYPE_CHECKING:
    never executed, so it cannot close a cycle, but it must still go down the layers).
    """
    found = []
    tree = ast.parse(path.read_text())
    typing_lines = {n for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                    for stmt in node.body for n in range(stmt.lineno, stmt.end_lineno + 1)}

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and STRING_REF.match(node.value):
            target = resolve(node.value.partition(":")[0])
            if target:
                found.append((target, node.lineno, "string"))
            continue
        for name in names:
            target = resolve(name)
            if target:
                found.append((target, node.lineno, "typing" if node.lineno in typing_lines else "import"))
    return found


def edges() -> dict[str, list[tuple[str, int, str]]]:
    known = modules()
    return {m: [i for i in imports(p, known) if i[0] != m] for m, p in known.items()}


def violation(src: str, dst: str, how: str) -> str | None:
    a, b = layer(src), layer(dst)
    if RANKS[b] > RANKS[a] and not (a == "cli" and b == "samples"):
        return f"up: {a} imports {b}"
    if a == "passes" and b == "backends":
        return "a pass imports a runtime"
    if a == b == "passes" and technique(src) != technique(dst) and technique(dst) is not None and how != "string":
        return f"sideways: {technique(src) or 'passes root'} imports {technique(dst)}"
    return None


def test_no_import_goes_up_or_sideways() -> None:
    bad = [f"{src}:{line} -> {dst} ({why})"
           for src, targets in edges().items() for dst, line, how in targets
           if (why := violation(src, dst, how))]
    assert bad == [], "\n".join(bad)


def test_no_import_cycle() -> None:
    graph = {m: {dst for dst, _, how in targets if how == "import"} for m, targets in edges().items()}
    # a package's __init__ re-exporting its own submodules is not a cycle of the layering
    graph = {m: {d for d in ds if not d.startswith(m + ".")} for m, ds in graph.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "\n".join(cycles)


def test_modules_stay_small() -> None:
    big = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"


def test_framework_code_lives_in_files_named_for_the_framework() -> None:
    bad = [str(p.relative_to(ROOT)) for p in modules().values()
           if p.stem in ("torch", "onnx", "tensorflow", "tf", "keras", "litert", "utils")]
    assert bad == []


def test_pass_classes_and_files_follow_the_naming_rule() -> None:
    """A pass ``technique.a.b`` is class ``TechniqueAB`` in ``passes/technique/a_b.py`` (``to_a`` for a conversion)."""
    from compressor.passes.registry import PASSES

    for name, spec in PASSES.items():
        module, _, cls = spec.partition(":")
        technique_name, *rest = name.split(".")
        stem = "_".join(rest)
        if technique_name == "convert":
            stem = f"to_{stem}"
        elif technique_name == "optimize":
            stem = f"{stem}_graph"  # a module may not be named onnx.py
        assert module == f"compressor.passes.{technique_name}.{stem}", name
        assert cls == "".join(part.capitalize() for part in re.split(r"[._]", name)), name
