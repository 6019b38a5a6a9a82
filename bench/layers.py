"""Import layers of the `taehwa` package, measured from its source (nothing is imported or run).

    python bench/layers.py              # every import, TYPE_CHECKING ones included
    python bench/layers.py --runtime    # only the imports that run (module level and deferred)
    python bench/layers.py --list       # every module with its layer
    python bench/layers.py --root DIR   # another checkout's taehwa/ (before and after a change)

Every module under taehwa/ is read with `ast`; each import of a taehwa module is an edge of the module graph,
marked `top` (at module level: runs on import), `deferred` (inside a function or method: runs when called) or
`typing` (under `if TYPE_CHECKING:`, for annotations only: a dependency of the design all the same, which
--runtime leaves out). Importing `taehwa.a.b` counts as an edge to `taehwa.a.b` (the module), not to the package
`taehwa.a` that Python also imports.

Measured:

- `layers`: the strongly connected components of the graph (import cycles) are condensed to one node each, and the
  resulting DAG is layered by a topological sort: a module's layer is one more than the highest layer it imports
  (0: imports nothing of taehwa). The number of layers is the depth of the longest import chain;
- `upward`: imports that run back up against the intended order of packages (issue 27): core (errors, settings,
  time, names, YAML) → db, tenancy → historian → connectors, twin → lab → live → academy,
  sharing → server (composition, doctor, overview; demo and replay, which play datasets into it) → api, cli,
  web. A module counts where it lies now (a file under `tenancy/` is tenancy), so a module filed in the wrong package
  shows here;
- `cycles`: components of more than one module, with their size and members.

Prints the layers by package, the upward imports, the cycles, then as its last line
{"bench": "layers", "figures": {..., "runtime": {...}}} (the headline figures with and without TYPE_CHECKING
imports).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "taehwa"

# the intended order (issue 27), by package: a higher rank may import a lower one, never the reverse; packages of
# one rank are peers
RANK: dict[str, int] = {
    "core": 0,
    "taehwa": 0,
    "db": 1,
    "migrate": 1,
    "migrations": 1,
    "tenancy": 1,
    "historian": 2,
    "connectors": 3,
    "twin": 3,
    "lab": 4,
    "analytics": 4,
    "live": 5,
    "academy": 6,
    "sharing": 6,
    "city": 6,
    "server": 7,
    "sqlport": 7,
    "flight": 7,
    "demo": 7,
    "replay": 7,
    "api": 8,
    "cli": 8,
    "web": 8,
    "client": 8,
    "__main__": 8,
}
ORDER = (
    "core → db, tenancy → historian → connectors, twin → lab, analytics → live → academy, sharing, city → "
    "server (and the SQL and Flight ports it serves) → api, cli, web, client"
)


@dataclass(frozen=True)
class Edge:
    """One import of a taehwa module by another: where (line) and how it runs (top, deferred or typing)."""

    source: str
    target: str
    line: int
    kind: str


@dataclass
class Measure:
    """The figures (for the JSON line), the report's lines and each module's layer."""

    figures: dict[str, object]
    lines: list[str]
    layers: dict[str, int] = field(default_factory=dict)


def module_name(path: Path, root: Path) -> str:
    """`taehwa/a/b.py` → `taehwa.a.b`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package(module: str) -> str:
    """The package a module belongs to for the intended order: `taehwa.a.b` → `a`, `taehwa.core.errors` → `errors`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "taehwa"


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str, modules: set[str]) -> str | None:
    """The taehwa module that `name` (a module, or a module's attribute) names: its longest module prefix."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: set[str]) -> list[Edge]:
    """Every import of a taehwa module in one file, marked top, deferred or typing."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: list[Edge] = []

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        """The dotted names an import statement brings in (relative imports resolved against this module)."""
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        return [f"{base}.{a.name}" if a.name != "*" else base for a in node.names]

    def visit(node: ast.AST, kind: str) -> None:
        """Walk the tree, remembering whether we are under TYPE_CHECKING or inside a function."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in names(child):
                    target = _resolve(name, modules)
                    if target is not None and target != module:
                        out.append(Edge(module, target, child.lineno, kind))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), kind)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, "typing" if kind == "typing" else "deferred")
            else:
                visit(child, kind)

    visit(tree, "top")
    return out


def strongly_connected(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                out.append(sorted(comp))
    return out


def layer_of(components: list[list[str]], graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer in the condensation: 0 for a component importing nothing outside itself, else one more
    than the highest component it imports (Tarjan yields components dependencies first: one pass suffices)."""
    comp_of = {m: i for i, comp in enumerate(components) for m in comp}
    level: dict[int, int] = {}
    for i, comp in enumerate(components):
        below = {comp_of[t] for m in comp for t in graph[m]} - {i}
        level[i] = 1 + max((level[j] for j in below), default=-1)
    return {m: level[comp_of[m]] for m in comp_of}


def measure(root: Path, include_typing: bool) -> Measure:
    """The figures, the report's lines and the layers of the package at `root`."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root): p for p in files}
    edges = [e for m, p in modules.items() for e in imports_of(m, p, set(modules))]
    used = [e for e in edges if include_typing or e.kind != "typing"]
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for e in used:
        graph[e.source].add(e.target)
    components = strongly_connected(sorted(modules), graph)
    layers = layer_of(components, graph)
    cycles = sorted((c for c in components if len(c) > 1), key=lambda c: (-len(c), c))
    unknown = sorted({package(m) for m in modules} - set(RANK))
    if unknown:
        raise SystemExit(f"no rank in the intended order for packages {unknown}: add them to RANK")
    upward = sorted(
        {(e.source, e.target, e.kind, e.line) for e in used if RANK[package(e.target)] > RANK[package(e.source)]}
    )

    lines = [
        f"{len(modules)} modules, {len(used)} imports of taehwa modules "
        f"({sum(e.kind == 'top' for e in used)} top, {sum(e.kind == 'deferred' for e in used)} deferred"
        + (
            f", {sum(e.kind == 'typing' for e in used)} typing"
            if include_typing
            else f"; {sum(e.kind == 'typing' for e in edges)} TYPE_CHECKING imports left out"
        )
        + ")",
        f"{max(layers.values()) + 1} layers (longest import chain, cycles condensed)",
        "",
        "layers by package:",
    ]
    by_package: dict[str, list[int]] = defaultdict(list)
    for m, level in layers.items():
        by_package[package(m)].append(level)
    for pkg, levels in sorted(by_package.items(), key=lambda kv: (RANK[kv[0]], min(kv[1]), kv[0])):
        lines.append(f"  {pkg:<12} rank {RANK[pkg]}  layers {min(levels)}–{max(levels)}  ({len(levels)} modules)")
    lines += ["", f"imports that run back up ({len(upward)}), against {ORDER}:"]
    for source, target, kind, line in upward:
        lines.append(f"  {source}:{line} → {target}  [{kind}]  ({package(source)} → {package(target)})")
    lines += ["", f"import cycles ({len(cycles)}):"]
    for comp in cycles:
        lines.append(f"  {len(comp)} modules: {', '.join(comp)}")
    figures: dict[str, object] = {
        "modules": len(modules),
        "imports": len(used),
        "layers": max(layers.values()) + 1,
        "upward": len(upward),
        "upward_by_kind": {
            k: sum(u[2] == k for u in upward) for k in ("top", "deferred", "typing") if any(u[2] == k for u in upward)
        },
        "cycles": len(cycles),
        "cycle_sizes": [len(c) for c in cycles],
        "typing_included": include_typing,
    }
    return Measure(figures, lines, layers)


def main(argv: list[str] | None = None) -> int:
    """Print the report, then the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runtime", action="store_true", help="leave TYPE_CHECKING imports out")
    parser.add_argument("--list", action="store_true", help="every module with its layer")
    parser.add_argument("--root", type=Path, default=ROOT, help="the taehwa/ folder to read (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    shown = measure(root, include_typing=not args.runtime)
    print("\n".join(shown.lines))
    if args.list:
        print("\nmodules by layer:")
        for m, level in sorted(shown.layers.items(), key=lambda kv: (kv[1], kv[0])):
            print(f"  {level:>2}  {m}")
    figures = dict(shown.figures)
    if not args.runtime:
        runtime = measure(root, include_typing=False).figures
        figures["runtime"] = {k: runtime[k] for k in ("layers", "upward", "cycles", "cycle_sizes")}
    print(json.dumps({"bench": "layers", "figures": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
