"""The package type-checks with mypy --strict and ships its py.typed marker."""

from __future__ import annotations

import subprocess
import sys

from conftest import PACKAGE


def test_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "src/floodgate"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_marker() -> None:
    assert (PACKAGE / "src" / "floodgate" / "py.typed").is_file()
