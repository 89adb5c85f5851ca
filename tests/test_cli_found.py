"""What a new user met first: every command says what it does, a missing account or a broken
manifest is one line saying what to pass or which file is wrong, and nothing waits on a prompt
nobody can answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from computeshare.cli import COMMANDS, main

EXECUTABLE = Path(sys.executable).with_name("computeshare")


def _leaves(group: click.Group, path: tuple[str, ...]):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


def all_commands():
    """(words, command) for every command the line offers, groups opened."""
    import importlib

    found = []
    for name, (module, attribute, _) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        if isinstance(command, click.Group):
            found += list(_leaves(command, (name,)))
        else:
            found.append(((name,), command))
    return found


def test_every_command_and_its_account_option_say_what_they_are():
    """`provider --help` lists pause, resume and retire with what they do, and `--account`
    says what it takes wherever it appears."""
    listing = CliRunner().invoke(main, ["provider", "--help"])
    assert listing.exit_code == 0, listing.output
    for action in ("pause", "resume", "retire"):
        line = next(line for line in listing.output.splitlines() if line.split()[:1] == [action])
        assert len(line.split()) > 3, line
        page = CliRunner().invoke(main, ["provider", action, "--help"])
        assert "of your" in page.output and "DEVICE: its id" in page.output, page.output
    missing = [" ".join(words) for words, command in all_commands() if not command.help]
    assert missing == [], f"commands without help: {missing}"
    quiet = [
        " ".join(words)
        for words, command in all_commands()
        for param in command.params
        if "--account" in getattr(param, "opts", ()) and not param.help
    ]
    assert quiet == [], f"--account without help: {quiet}"
    page = CliRunner().invoke(main, ["provider", "pause", "--help"])
    assert "COMPUTESHARE_ACCOUNT" in page.output and "TEST::" in page.output, page.output


def no_account_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "COMPUTESHARE_ACCOUNT"}


def test_a_command_without_an_account_says_what_to_pass(deployed_manifest, chain):
    """No --account and no COMPUTESHARE_ACCOUNT: one line naming both, TEST::n and `ape
    accounts import`, at once and without a prompt (no terminal to answer it)."""
    where = ["--manifest", str(deployed_manifest), "--network", chain.provider.uri]
    done = subprocess.run(
        [str(EXECUTABLE), "provider", "stake", "5", *where],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=no_account_environment(),
    )
    assert done.returncode != 0 and done.stdout == "", done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for part in ("--account", "COMPUTESHARE_ACCOUNT", "TEST::", "ape accounts import"):
        assert part in lines[0], lines[0]
    assert "Select an account" not in done.stderr
    # In process, with input waiting that ape's prompt would have read: still no prompt.
    result = CliRunner(env={"COMPUTESHARE_ACCOUNT": None}).invoke(
        main, ["provider", "pause", "abcdef", *where], input="0\n"
    )
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "--account" in result.output and "Select an account" not in result.output
    # A command that sends nothing needs no account.
    result = CliRunner(env={"COMPUTESHARE_ACCOUNT": None}).invoke(main, ["show", "jobs", *where])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '{"complete": true, "chain_id": 31337, "contracts": []}',
        '{"complete": true, "chain_id": 31337, "contracts": {"JobEscrow": 7}}',
        '{"complete": true, "chain_id": "x", "contracts": {}}',
        "\xff\xfe",
    ],
)
def test_a_broken_manifest_is_one_line_naming_its_file(text, chain, tmp_path):
    """Not JSON, or JSON that is not a manifest: one line with the file's path, for a
    command that reads (through the node's JSON-RPC) and one that sends (through ape)."""
    path = tmp_path / "broken-manifest.json"
    path.write_text(text, encoding="latin-1")
    where = ["--manifest", str(path), "--network", chain.provider.uri]
    for args in (["show", "devices"], ["provider", "stake", "5", "--account", "TEST::4"]):
        result = CliRunner().invoke(main, [*args, *where])
        assert result.exit_code != 0, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert str(path) in lines[0], lines[0]
        assert "Error" not in lines[0].removeprefix("Error: "), lines[0]
    # The installed command reads over plain JSON-RPC (computeshare.reader), without ape.
    done = subprocess.run(
        [str(EXECUTABLE), "show", "devices", *where], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and done.stdout == "", done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(path) in done.stderr and "Traceback" not in done.stderr, done.stderr


ROOT = Path(__file__).resolve().parents[1]
# What the README's commands write into the checkout: the quickstart's deployment, index and
# agent lock (deployments/), the agent run as the README shows it (`--journal agent.json`
# from the root: the journal, its temporary file, its index and the outputs beside it), the
# index's SQLite WAL files while a dashboard or agent runs, and build outputs.
WRITTEN = (
    "deployments/custom-31337.json",
    "deployments/custom-31337.sqlite",
    "deployments/custom-31337.sqlite-wal",
    "deployments/custom-31337.sqlite-shm",
    "deployments/locks/agent-31337-0x15d34aaf54267db7d7c367839aaf71a00a2c6a65.lock",
    "deployments/custom-31337.stale.json",
    "agent.json",
    "agent.tmp",
    "agent.sqlite",
    "agent.sqlite-wal",
    "agent.sqlite-shm",
    "outputs/0x1234/output.bin",
    "build/demo-report/index.html",
    "examples/build/gztree.wasm",
)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_git_ignores_what_the_readme_flow_writes_and_nothing_committed():
    done = git("check-ignore", "--no-index", "--verbose", "--non-matching", *WRITTEN)
    unignored = [line.split("\t")[1] for line in done.stdout.splitlines() if line.startswith("::")]
    assert unignored == [], f"left untracked by the README's commands: {unignored}"
    # A published deployment's manifest and the deploy configurations stay committable.
    for kept in ("deployments/sepolia-11155111.json", "deployments/config/local.yaml"):
        assert git("check-ignore", "--no-index", "-q", kept).returncode == 1, kept
    hidden = git("ls-files", "--cached", "--ignored", "--exclude-standard").stdout.split()
    assert hidden == [], f"committed files an ignore rule would hide: {hidden}"


def test_an_agent_names_itself_in_its_log_as_asked(deployed_manifest, chain, tmp_path):
    """`--name` replaces the address prefix of the agent's log lines (the demo passes the
    names its tables use); without it, the start of the address."""
    where = ["--manifest", str(deployed_manifest), "--network", chain.provider.uri]
    as_4 = [*where, "--account", "TEST::4"]
    for args in (["provider", "stake", "5000"], ["provider", "register", "--gpus", "0"]):
        result = CliRunner().invoke(main, [*args, *as_4])
        assert result.exit_code == 0, result.output
    journal = ["--journal", str(tmp_path / "agent.json"), "--steps", "1", "--poll", "0"]
    result = CliRunner().invoke(main, ["agent", *journal, "--name", "bravo", *as_4])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[bravo] serving device 0x"), result.output
    assert "0x15d34A" not in result.output
    result = CliRunner().invoke(main, ["agent", *journal, *as_4])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[0x15d34A] serving device 0x"), result.output


def test_the_setups_npm_step_leaves_the_lock_as_committed(tmp_path):
    """`make setup`'s npm command, run on a copy of package.json and the lock: anvil is
    installed and the lock is byte for byte what is committed (`npm ci` never writes it)."""
    import re
    import shutil

    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(NODE_STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None
    lines = [line.strip().lstrip("@") for line in recipe[1].splitlines()]
    npm = [line for line in lines if line.startswith("npm ")]
    assert len(npm) == 1 and npm[0].startswith("npm ci "), npm
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run(npm[0].split(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "package-lock.json").read_bytes() == (
        ROOT / "package-lock.json"
    ).read_bytes()
    assert (tmp_path / "node_modules" / ".bin" / "anvil").exists()
