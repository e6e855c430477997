"""The package's shape: scripts/check_structure.py passes (engine -> TUI only, no prints/exits, <= 400 lines)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_structure.py"


def test_structure_check_passes():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "session.session -> " in result.stdout and "ok:" in result.stdout


def test_structure_check_catches_each_rule(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import check_structure
    finally:
        sys.path.pop(0)
    package = tmp_path / "memetui"
    (package / "tui").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tui" / "__init__.py").write_text("")
    (package / "engine.py").write_text("from .tui import app\nimport sys\nprint('hi')\nsys.exit(2)\n")
    (package / "long.py").write_text("x = 1\n" * 401)
    (package / "tui" / "app.py").write_text("print('front ends may print')\n")
    monkeypatch.setattr(check_structure, "PACKAGE", package)
    _, problems = check_structure.check()
    text = "\n".join(problems)
    assert "engine.py: engine module imports memetui.tui" in text
    assert "print()" in text and "sys.exit()" in text
    assert "long.py: 401 lines" in text
    assert "tui/app.py" not in text
