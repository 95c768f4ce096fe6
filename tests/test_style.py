"""The code keeps the lint rules pyproject.toml declares (ruff: pycodestyle, pyflakes, isort,
pyupgrade, bugbear)."""
from __future__ import annotations

import subprocess
import sys

from mydata.config import PROJECT_ROOT


def test_the_code_is_clean_under_the_declared_ruff_rules():
    checked = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                             cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rule_breach_is_caught(tmp_path):
    (tmp_path / "pyproject.toml").write_text((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (tmp_path / "bad.py").write_text("import os\n")
    checked = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "F401" in checked.stdout
