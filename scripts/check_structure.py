"""Print memetui's internal import graph and check the package's shape rules.

    python scripts/check_structure.py          # graph + violations; exit 1 on any violation

Rules (see README, Development):
- engine modules (everything but memetui/tui, memetui/commands and memetui/cli.py) never import
  the TUI, the commands or the CLI: data flows engine -> TUI;
- engine modules never print or exit (no print(), sys.exit/exit/quit/os._exit, raise SystemExit):
  they raise typed errors, the CLI and the TUI turn them into messages;
- no module is longer than 400 lines.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "memetui"
FRONT_ENDS = ("memetui.tui", "memetui.commands", "memetui.cli")
MAX_LINES = 400
EXITS = {("sys", "exit"), ("os", "_exit")}


def module_name(path: Path) -> str:
    """Dotted module name of a file under the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_front_end(name: str) -> bool:
    """Whether `name` belongs to the TUI, the commands or the CLI."""
    return any(name == f or name.startswith(f + ".") for f in FRONT_ENDS)


def imports_of(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """memetui modules imported anywhere in `tree` (relative imports resolved)."""
    found: set[str] = set()
    base = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("memetui")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("memetui"):
                # `from .. import kitty` imports a module: name it, not its package
                found |= {f"{target}.{a.name}" for a in node.names} if node.module is None else {target}
    return found


def prints_or_exits(tree: ast.AST) -> list[str]:
    """Lines that print, exit or raise SystemExit."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("print", "exit", "quit"):
                hits.append(f"line {node.lineno}: {func.id}()")
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and (func.value.id, func.attr) in EXITS:
                hits.append(f"line {node.lineno}: {func.value.id}.{func.attr}()")
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                hits.append(f"line {node.lineno}: raise SystemExit")
    return hits


def check() -> tuple[dict[str, set[str]], list[str]]:
    """(import graph, violations) of the package."""
    graph: dict[str, set[str]] = {}
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        source = path.read_text(encoding="utf-8")
        lines = source.count("\n") + (not source.endswith("\n") and bool(source))
        tree = ast.parse(source, filename=str(path))
        graph[name] = imports_of(tree, name, path.name == "__init__.py") - {name}
        relative = path.relative_to(PACKAGE.parent)
        if lines > MAX_LINES:
            problems.append(f"{relative}: {lines} lines (limit {MAX_LINES})")
        if is_front_end(name):
            continue
        for target in sorted(graph[name]):
            if is_front_end(target):
                problems.append(f"{relative}: engine module imports {target}")
        problems += [f"{relative}: engine module prints or exits, {hit}" for hit in prints_or_exits(tree)]
    return graph, problems


def main() -> int:
    """Print the graph and the violations; 1 when there is any."""
    graph, problems = check()
    print(f"memetui import graph ({len(graph)} modules; A -> what A imports):")
    for name in sorted(graph):
        targets = ", ".join(t.removeprefix("memetui.") for t in sorted(graph[name])) or "-"
        print(f"  {name.removeprefix('memetui.') or 'memetui'} -> {targets}")
    if problems:
        print(f"\n{len(problems)} violation(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print("\nok: engine never imports tui/commands/cli, never prints or exits; every module <= "
          f"{MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
