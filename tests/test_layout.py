"""The tree tells the data path: imports run one way, from the rooms down to the core."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / "shared"
"""The library, installed as `dashcache` (worker/ and bench/ as `dashcache.worker`, `.bench`)."""
ROOMS = ("reader", "events", "observe", "cdc", "cli")
ENTRY_POINTS = {"dashcache.async_reader": "reader"}
"""Public modules at the top that re-export a room's names (the contract's import paths)."""


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, absolute names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def room_of(module: str) -> str | None:
    """The room a `dashcache.*` module of shared/ belongs to, `core` for the top level, None
    outside (the worker, the benchmarks and other packages)."""
    if module in ENTRY_POINTS:
        return ENTRY_POINTS[module]
    parts = module.split(".")
    if parts[0] != "dashcache" or len(parts) < 2 or parts[1] in ("worker", "bench"):
        return None
    return parts[1] if parts[1] in ROOMS else "core"


def module_of(path: Path) -> str:
    """Installed name of a file of shared/: `shared/reader/rules.py` is dashcache.reader.rules."""
    return ".".join(("dashcache", *path.relative_to(SHARED).with_suffix("").parts))


def test_shared_never_imports_the_worker_or_the_benchmarks() -> None:
    """shared/ is what the worker and readers share: it imports neither `dashcache.worker` nor
    `dashcache.bench`, nor any top-level name but `dashcache` of the project's own."""
    for path in SHARED.rglob("*.py"):
        names = imports_of(path)
        bad = {
            n
            for n in names
            if n.split(".")[:2] in (["dashcache", "worker"], ["dashcache", "bench"])
        }
        bad |= {n for n in names if n.split(".")[0] in ("shared", "worker", "bench", "tests")}
        assert not bad, (path, bad)


def test_no_import_runs_back_up() -> None:
    """The core imports no room; reader/, events/ and observe/ import only the core and
    themselves; cdc/ the core and events/ (it makes their deltas); cli/ sits on top of them all."""
    allowed = {
        "core": {"core"},
        "reader": {"core", "reader"},
        "events": {"core", "events"},
        "observe": {"core", "observe"},
        "cdc": {"core", "events", "cdc"},
        "cli": {"core", "cli", "reader", "events", "observe", "cdc"},
    }
    for path in SHARED.rglob("*.py"):
        module = module_of(path).removesuffix(".__init__")
        room = room_of(module)
        if room is None:  # shared/__init__.py
            continue
        used = {room_of(name) for name in imports_of(path)} - {None}
        assert used <= allowed[room], (module, used - allowed[room])
