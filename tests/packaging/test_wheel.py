"""The built wheel installs one import name, `dashcache`, with every module of the project."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"shared": "dashcache", "worker": "dashcache/worker", "bench": "dashcache/bench"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the working tree (the checkout itself stays clean)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    subprocess.run([*command, str(source)], check=True, timeout=300)
    (built,) = out.glob("dashcache-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_only_dashcache(wheel: zipfile.ZipFile) -> None:
    """Its top-level names are `dashcache` and its .dist-info: no `shared`, `worker`, `bench`."""
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert top == {"dashcache", "dashcache-0.2.0.dist-info"}


def test_the_wheel_holds_every_module_under_its_new_name(wheel: zipfile.ZipFile) -> None:
    """Each .py file of shared/, worker/ and bench/ is in the wheel where `dashcache` maps it,
    and the package is marked typed."""
    names = set(wheel.namelist())
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{relative}" in names, f"{folder}/{relative} is not in the wheel"
    assert "dashcache/py.typed" in names


def test_the_command_and_the_bench_entry_point_use_the_new_names(wheel: zipfile.ZipFile) -> None:
    """`dashcache` runs dashcache.cli:main; `dashcache bench` loads dashcache.bench.cli."""
    entry_points = wheel.read("dashcache-0.2.0.dist-info/entry_points.txt").decode()
    assert "dashcache = dashcache.cli:main" in entry_points
    assert "bench = dashcache.bench.cli:bench" in entry_points
