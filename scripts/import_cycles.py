"""The project's import graph: cycles, and imports that go against the layers.

    .venv/bin/python scripts/import_cycles.py        # prints what it finds; exit status 1 if anything

Every `import` in the project's apps (tests and migrations left out) counts, at module level or inside a
function: an import inside a function that closes a circle is still a circle, only hidden. An import names
the most specific project module it reaches (`from chat import services` is chat.services; `from chat.worker
import get_manager` is the package chat.worker). Reported:
- cycles: groups of modules that import each other, directly or round about;
- chat/worker/ importing the rest of chat (chat.models, chat.services, ...): the worker package stays
  below the web side (and never imports Django models, since it runs in the worker process);
- an app importing llmsite/ (the project package above the apps).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "advisor", "chat", "downloads", "llmsite")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT).parts
            if "tests" in relative or "migrations" in relative:
                continue
            modules[module_name(path)] = path
    return modules


def imported(path: Path, name: str, modules: dict) -> set[str]:
    """Project modules `name` (at `path`) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # `from chat import services`
    found = set()
    for target in targets:
        parts = target.split(".")
        for i in range(len(parts), 0, -1):  # the longest name that is a project module
            candidate = ".".join(parts[:i])
            if candidate in modules:
                if candidate != name:
                    found.add(candidate)
                break
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if module.startswith("chat.worker") and target.startswith("chat.") and \
                    not target.startswith("chat.worker"):
                problems.append(f"{module} imports {target}: chat/worker/ must not import the rest of chat")
            if not module.startswith("llmsite") and target.startswith("llmsite"):
                problems.append(f"{module} imports {target}: an app imports llmsite/, the project above it")
    return problems


def report() -> tuple[list[list[str]], list[str]]:
    modules = project_modules()
    graph = {name: imported(path, name, modules) for name, path in modules.items()}
    return cycles(graph), layer_violations(graph)


def main() -> int:
    found_cycles, problems = report()
    for component in found_cycles:
        print("cycle:", " <-> ".join(component))
    for problem in problems:
        print("layer:", problem)
    if not found_cycles and not problems:
        print("no import cycles; chat/worker/ imports nothing of the rest of chat; no app imports llmsite/")
    return 1 if found_cycles or problems else 0


if __name__ == "__main__":
    sys.exit(main())
