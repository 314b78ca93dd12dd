"""The worked scripting example runs on the simulated rig, as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, rig_yaml


def test_unattended_example_runs_and_sees_particles_switch(tmp_path: Path) -> None:
    rig = tmp_path / "rig.yaml"
    rig.write_text(rig_yaml(width=96, height=96, particles=8, references=2))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/unattended_example.py"),
            "--rig",
            str(rig),
            "--cycles",
            "2",
            "-o",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "complete: " in done.stdout
    found = int(done.stdout.split(" particles found")[0].split()[-1])
    switched = int(done.stdout.split(" switched at least once")[0].split()[-1])
    assert found == 10  # 8 particles and 2 references
    assert 4 <= switched <= 8  # references never switch
    assert (tmp_path / "analysis" / "particles.csv").is_file()
