"""The floors stay straight: every import inside autoseg runs downward (or within its package).

The import graph is read from the source with :mod:`ast` (nothing is imported). Floors, top
to bottom, as in docs/architecture.md::

    cli -> demo/tuning/diagnostics -> trainers -> inference -> ensembling -> evaluation -> planner
        -> preprocessing/viz -> networks/data -> core (errors, atomic, strict, workspace, ...)

A module may import from its own package or from a package on a lower floor; packages that
share a floor do not import each other. Inside a package, module imports form no circle.

Run as a script (``python tests/test_import_floors.py``) to print the figures.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "autoseg"

#: Packages by floor, top first; ``core`` is every top-level module (``autoseg/*.py``).
FLOORS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("demo", "tuning", "diagnostics"),
    ("trainers",),
    ("inference",),
    ("ensembling",),
    ("evaluation",),
    ("planner",),
    ("preprocessing", "viz"),
    ("networks", "data"),
    ("core",),
)
FLOOR = {package: len(FLOORS) - i for i, floor in enumerate(FLOORS) for package in floor}

_TORCH_FREE = "a torch-free module (the CLI and the planner start without torch)"
_PICTURE = "matplotlib loads only when a picture is drawn"
#: Function-local imports outside cli/ that are deliberate (heavy or optional dependencies
#: imported only where they are used): module -> (imported modules, why).
DELIBERATE_LAZY: dict[str, tuple[set[str], str]] = {
    "autoseg.atomic": ({"torch"}, _TORCH_FREE),
    "autoseg.parallel": ({"torch"}, _TORCH_FREE),
    "autoseg.seeding": ({"torch"}, _TORCH_FREE),
    "autoseg.precision": ({"torch"}, _TORCH_FREE),
    "autoseg.planner.hardware": ({"torch"}, _TORCH_FREE),
    "autoseg.planner.cpu_speed": ({"autoseg.planner.cpu_probe"}, _TORCH_FREE),
    "autoseg.data.formats.manifest": ({"pandas"}, "pandas loads only for CSV datasets"),
    "autoseg.preprocessing.interpolation": ({"torch"}, _TORCH_FREE),
    "autoseg.networks.deepmedic_geometry": ({"torch"}, _TORCH_FREE),
    "autoseg.networks": ({"autoseg.networks.unet", "autoseg.networks.deepmedic"}, _TORCH_FREE),
    "autoseg.trainers.tensorboard": (
        {"torch.utils.tensorboard.SummaryWriter"},
        "tensorboard is optional",
    ),
    "autoseg.trainers.history": (
        {
            "matplotlib.backends.backend_agg.FigureCanvasAgg",
            "matplotlib.figure.Figure",
            "matplotlib.ticker.MaxNLocator",
        },
        _PICTURE,
    ),
    "autoseg.ensembling.plot": (
        {
            "matplotlib.backends.backend_agg.FigureCanvasAgg",
            "matplotlib.figure.Figure",
            "matplotlib.patches.Patch",
        },
        _PICTURE,
    ),
    "autoseg.viz.overlay_figure": (
        {
            "matplotlib.patheffects",
            "matplotlib.colors.to_rgb",
            "matplotlib.backends.backend_agg.FigureCanvasAgg",
            "matplotlib.figure.Figure",
            "matplotlib.lines.Line2D",
            "matplotlib.patches.Patch",
        },
        _PICTURE,
    ),
    "autoseg.tuning.summary": (
        {"matplotlib.backends.backend_agg.FigureCanvasAgg", "matplotlib.figure.Figure"},
        _PICTURE,
    ),
    "autoseg.tuning.report": (
        {"matplotlib", "matplotlib.pyplot", "optuna.visualization.matplotlib"},
        _PICTURE + " (after selecting the Agg backend)",
    ),
}
#: Modules ``autoseg --help`` must not import.
HEAVY = ("torch", "scipy", "nibabel", "SimpleITK", "pandas", "optuna", "matplotlib")


@dataclass(frozen=True)
class Import:
    """One import statement of an autoseg module."""

    module: str  # the importing module, e.g. "autoseg.trainers.loop"
    line: int
    targets: tuple[str, ...]  # imported modules (autoseg.* resolved to modules), or externals
    local: bool  # inside a function body
    type_checking: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def package_of(module: str) -> str:
    """``autoseg.trainers.loop`` -> ``trainers``; top-level modules -> ``core``."""
    parts = module.split(".")
    if module == "autoseg.__main__":
        return "cli"
    if len(parts) == 1 or (ROOT / parts[1]).with_suffix(".py").exists():
        return "core"
    return parts[1]


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The deepest known module that ``name`` (a module or ``module.attribute``) names."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, local: bool, type_checking: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, local, type_checking
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, True, type_checking)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), local, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), local, type_checking)
        else:
            yield from _walk(child, local, type_checking)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node, local, type_checking in _walk(tree, False, False):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        targets = tuple(
            _resolve(name, modules) if name.split(".")[0] == "autoseg" else name for name in names
        )
        found.append(Import(module, node.lineno, targets, local, type_checking))
    return found


def all_imports() -> list[Import]:
    modules = all_modules()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def _internal(imp: Import) -> list[str]:
    return [t for t in imp.targets if t.split(".")[0] == "autoseg" and t != "autoseg"]


def upward_imports(imports: list[Import]) -> list[tuple[Import, str]]:
    """(import, target) pairs that reach a package on the same or a higher floor."""
    bad = []
    for imp in imports:
        source = package_of(imp.module)
        for target in _internal(imp):
            dest = package_of(target)
            if dest != source and FLOOR[dest] >= FLOOR[source]:
                bad.append((imp, target))
    return bad


def package_cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components (size > 1) of the module graph within each package."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        for target in _internal(imp):
            if target != imp.module and package_of(target) == package_of(imp.module):
                graph.setdefault(imp.module, set()).add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def longest_chains(imports: list[Import]) -> dict[str, list[str]]:
    """Per package, the longest chain of module-level imports between its modules (circles
    are walked once)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.local or imp.type_checking:
            continue
        for target in _internal(imp):
            if target != imp.module and package_of(target) == package_of(imp.module):
                graph.setdefault(imp.module, set()).add(target)
    best: dict[str, list[str]] = {}

    def walk(node: str, seen: tuple[str, ...]) -> list[str]:
        chains = [walk(n, (*seen, node)) for n in sorted(graph.get(node, ())) if n not in seen]
        return [node, *max(chains, key=len, default=[])]

    for node in sorted(graph):
        chain = walk(node, ())
        package = package_of(node)
        if len(chain) > len(best.get(package, [])):
            best[package] = chain
    return best


def local_imports(imports: list[Import]) -> list[Import]:
    return [imp for imp in imports if imp.local]


def undeclared_lazy_imports(imports: list[Import]) -> list[Import]:
    """Function-local imports outside cli/ that are not listed in DELIBERATE_LAZY."""
    return [
        imp
        for imp in local_imports(imports)
        if package_of(imp.module) != "cli"
        and not set(imp.targets) <= DELIBERATE_LAZY.get(imp.module, (set(), ""))[0]
    ]


def _where(imp: Import) -> str:
    return f"{imp.module}:{imp.line}"


def test_every_package_has_a_floor() -> None:
    packages = {package_of(m) for m in all_modules()}
    assert packages <= set(FLOOR), sorted(packages - set(FLOOR))


def test_imports_run_downward() -> None:
    bad = [f"{_where(imp)} imports {target}" for imp, target in upward_imports(all_imports())]
    assert not bad, "imports from a higher (or the same) floor:\n" + "\n".join(bad)


def test_no_import_cycles_inside_packages() -> None:
    cycles = package_cycles(all_imports())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_function_local_imports_outside_cli_are_deliberate() -> None:
    bad = [
        f"{_where(imp)} imports {', '.join(imp.targets)}"
        for imp in undeclared_lazy_imports(all_imports())
    ]
    assert not bad, (
        "function-local imports outside cli/ (move the code to the right floor, or list a "
        "heavy optional dependency in DELIBERATE_LAZY):\n" + "\n".join(bad)
    )


def test_deliberate_lazy_imports_are_still_there() -> None:
    local = {(imp.module, target) for imp in local_imports(all_imports()) for target in imp.targets}
    stale = [
        f"{module}: {target}"
        for module, (targets, _) in DELIBERATE_LAZY.items()
        for target in sorted(targets)
        if (module, target) not in local
    ]
    assert not stale, "DELIBERATE_LAZY lists imports that are gone:\n" + "\n".join(stale)


def test_the_cli_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from autoseg.cli import build_parser; build_parser(); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def main() -> None:
    imports = all_imports()
    up = upward_imports(imports)
    statements = {(imp.module, imp.line) for imp, _ in up}
    print(f"upward import statements: {len(statements)}")
    for imp, target in up:
        print(f"  {_where(imp)} -> {target}")
    cycles = package_cycles(imports)
    print(f"import cycles inside packages: {len(cycles)}")
    for cycle in cycles:
        print("  " + " <-> ".join(cycle))
    local = local_imports(imports)
    for kind, chosen in (
        ("of autoseg modules", [imp for imp in local if _internal(imp)]),
        ("of other modules", [imp for imp in local if not _internal(imp)]),
    ):
        in_cli = [imp for imp in chosen if package_of(imp.module) == "cli"]
        print(
            f"function-local imports {kind}: {len(chosen)} (cli/: {len(in_cli)}, "
            f"rest: {len(chosen) - len(in_cli)})"
        )
        for imp in chosen:
            if package_of(imp.module) != "cli":
                print(f"  {_where(imp)} {', '.join(dict.fromkeys(imp.targets))}")
    print("longest in-package import chain (modules):")
    for package, chain in sorted(longest_chains(imports).items()):
        print(f"  {package}: {len(chain)}  {' -> '.join(m.rsplit('.', 1)[-1] for m in chain)}")


if __name__ == "__main__":
    main()
