"""The wheel installs into a fresh virtual environment and works from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.environ.get("HELPDESKD_SKIP_PACKAGING") == "1", reason="HELPDESKD_SKIP_PACKAGING=1")
def test_wheel_installs_and_runs_outside_the_repository(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True, timeout=300, cwd=tmp_path,
    )
    [wheel] = list(dist.glob("helpdeskd-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", str(wheel)], check=True, timeout=600, cwd=tmp_path)
    helpdeskd = str(env_dir / "bin" / "helpdeskd")
    site = tmp_path / "site"
    site.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HELPDESKD_CONFIG", "PYTHONPATH")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([helpdeskd, *args], cwd=site, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
        return result

    run("init", "--policy", "open")
    run("migrate")
    run("create", "--customer", "ann@example.org", "--subject", "Packaged", "--message", "hello")
    assert [t["subject"] for t in json.loads(run("list", "--json").stdout)] == ["Packaged"]
    # the templates and migrations travel inside the wheel, not from this checkout
    probe = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c",
         "import helpdeskd.migrations, helpdeskd.templates; print(helpdeskd.migrations.__file__)"],
        cwd=site, env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    assert str(env_dir) in probe.stdout
