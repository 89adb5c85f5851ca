"""The README's quickstart, as written: docs/quickstart.sh is shown in the README verbatim and
run here on a fresh anvil of its own, from a fresh deployment to a paid job.

It deploys with `ape run deploy` like a user, so its manifest is the checkout's
deployments/custom-31337.json (ignored by git; one from an earlier node is moved aside)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "quickstart.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_readme_shows_the_quickstart_as_it_is():
    readme = (ROOT / "README.md").read_text()
    assert f"```sh\n{SCRIPT.read_text()}```\n" in readme


def test_the_quickstart_runs_as_written(tmp_path):
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "AGENT_PORT": str(free_port()),
        "WORK": str(tmp_path),
    }
    for variable in ("COMPUTESHARE_NETWORK", "COMPUTESHARE_ACCOUNT"):
        env.pop(variable, None)
    done = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    agent_log = (tmp_path / "agent.log").read_text() if (tmp_path / "agent.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{agent_log}"
    out = done.stdout
    assert "bonded stake: 5,000 tokens" in out
    assert "ok, fuel " in out, out[-2000:]
    # The job's status line, then the settlement the watch ends on.
    assert "finalized: replicas 1, accepted 1, committed 1, revealed 1" in out, out[-2000:]
    assert "settled: paid 9.75 tokens to providers, refunded 0, fees 0.25" in out
    assert "serving device 0x" in agent_log
