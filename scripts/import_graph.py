"""Print the import graph between tickcast's top-level packages: `python scripts/import_graph.py`.

One line per package -> package edge with the number of importing statements (grimp, which
import-linter uses, so function-local imports count too), then any import cycle between packages or
between modules, then how many first-party imports are made inside functions. Exits 1 when there is a cycle.

    --repo DIR   analyse another checkout (e.g. `git worktree add /tmp/before HEAD~5`)
    --local      also list every function-local first-party import with its line
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

import grimp


def packages(repo: Path) -> list[str]:
    """The repository's top-level Python packages, tests excluded."""
    return sorted(p.parent.name for p in repo.glob("*/__init__.py") if p.parent.name not in {"tests"})


def edges(graph, pkgs: list[str]) -> Counter:
    out: Counter = Counter()
    for m in graph.modules:
        src = m.split(".")[0]
        for imported in graph.find_modules_directly_imported_by(m):
            dst = imported.split(".")[0]
            if dst != src and dst in pkgs:
                out[src, dst] += len(graph.get_import_details(importer=m, imported=imported)) or 1
    return out


def cycles(nodes: list[str], succ) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ(root)))]
        index[root] = low[root] = n
        n += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = n
                    n += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ(w))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def local_imports(repo: Path, pkgs: list[str]) -> list[tuple[str, int, str, str]]:
    """First-party imports inside functions: (file, line, imported module, reason comment or '')."""
    out = []
    for pkg in pkgs:
        for path in sorted((repo / pkg).rglob("*.py")):
            src = path.read_text()
            lines = src.splitlines()
            for fn in ast.walk(ast.parse(src)):
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names = [node.module]
                    elif isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    else:
                        continue
                    for name in names:
                        if name.split(".")[0] in pkgs:
                            line = lines[node.lineno - 1]
                            reason = line.split("#", 1)[1].strip() if "#" in line else ""
                            out.append((str(path.relative_to(repo)), node.lineno, name, reason))
    return sorted(set(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--local", action="store_true", help="list every function-local first-party import")
    args = ap.parse_args(argv)
    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    pkgs = packages(repo)
    graph = grimp.build_graph(*pkgs, cache_dir=None)
    e = edges(graph, pkgs)
    print(f"packages: {', '.join(pkgs)}")
    print("imports between packages (importer -> imported: import statements):")
    for (a, b), n in sorted(e.items()):
        print(f"  {a:<10} -> {b:<10} {n:>4}")
    pkg_cycles = cycles(pkgs, lambda p: sorted({b for (a, b) in e if a == p}))
    mods = sorted(graph.modules)
    mod_cycles = cycles(mods, lambda m: sorted(graph.find_modules_directly_imported_by(m)))
    print("package cycles: " + ("; ".join(" <-> ".join(c) for c in pkg_cycles) or "none"))
    print("module cycles: " + ("; ".join(" <-> ".join(c) for c in mod_cycles) or "none"))
    loc = local_imports(repo, pkgs)
    bare = [x for x in loc if not x[3]]
    print(f"function-local first-party imports: {len(loc)}, {len(bare)} without a reason comment "
          "(the cycles above count them; --local lists them)")
    if args.local:
        for path, line, name, reason in loc:
            print(f"  {path}:{line} {name}" + (f"  # {reason}" if reason else ""))
    return 1 if pkg_cycles or mod_cycles else 0


if __name__ == "__main__":
    sys.exit(main())
