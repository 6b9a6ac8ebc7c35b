"""The package's import graph and the layout rules of docs/architecture.md, read from the source (nothing is run).

    python scripts/import_graph.py            # every internal import edge, then the rule checks; exit 1 on a break

Every ``import speechvision...`` / ``from speechvision... import`` counts, function-local ones included.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "speechvision"
# Inference entry points and what they must never reach (docs/architecture.md).
INFERENCE = ("speechvision.s2igan.pipeline", "speechvision.s2igan.retrieval", "speechvision.s2igan.export",
             "speechvision.avlm.infer", "speechvision.avlm.demo", "speechvision.avlm.bundle", "speechvision.web",
             "speechvision.web_avlm", "speechvision.demo")
TRAINING_SUFFIXES = (".losses", ".dialogue")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 120


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    """{dotted module name: file} of every module of the package."""
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every package import in ``path``, function-local ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == PACKAGE:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == PACKAGE]
    return out


def graph() -> dict[str, set[str]]:
    """{module: modules it imports} within the package (``from pkg import mod`` counts as an edge to pkg.mod)."""
    mods = modules()
    g = {}
    for name, path in mods.items():
        deps = set()
        for mod, names in imports(path):
            deps |= {f"{mod}.{n}" for n in names if f"{mod}.{n}" in mods} or {mod}
        g[name] = {d for d in deps if d != name and d in mods}
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in g:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in g.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def is_training(module: str) -> bool:
    return module.rsplit(".", 1)[-1].startswith("train") or module.endswith(TRAINING_SUFFIXES)


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    """Breaks of the layer rules: core imports nothing above it, data no model code, metrics no system,
    a system never the other, inference never training."""
    out = []
    for m, deps in g.items():
        for d in deps:
            if m.startswith("speechvision.core") and not d.startswith("speechvision.core") and d != PACKAGE:
                out.append(f"{m} (core) imports {d}")
            if m.startswith(("speechvision.data", "speechvision.metrics")) and d.startswith(
                    ("speechvision.s2igan", "speechvision.avlm", "speechvision.cli")):
                out.append(f"{m} imports the system module {d}")
            for a, b in (("s2igan", "avlm"), ("avlm", "s2igan")):
                if m.startswith(f"speechvision.{a}") and d.startswith(f"speechvision.{b}"):
                    out.append(f"{m} ({a}) imports {d} ({b})")
    for m in INFERENCE:
        out += [f"inference {m} reaches training code {d}" for d in sorted(reachable(g, m)) if is_training(d)]
    return out


def private_imports() -> list[str]:
    """``from speechvision.x import _name`` across modules (the package's own files)."""
    return [f"{module_name(p)} imports {mod}.{n}" for p in modules().values() for mod, names in imports(p)
            for n in names if n.startswith("_") and not n.startswith("__")]


def size_violations() -> list[str]:
    out = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            out.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{name}.{node.name}: {n} lines")
    return out


def main() -> int:
    g = graph()
    for m in sorted(g):
        print(f"{m} -> {', '.join(sorted(g[m])) or '-'}")
    problems = ([f"import cycle: {' <-> '.join(c)}" for c in cycles(g)] + layer_violations(g)
                + private_imports() + size_violations())
    print("\n".join(problems) if problems else "\nall layout rules hold")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
