"""The checkout as committed: what `make setup` leaves, and the suite's own hygiene."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_lock_names_every_platforms_anvil_so_npm_install_keeps_it():
    """npm writes each optional platform package of @foundry-rs/anvil into the lock; a lock
    that lists only this machine's would be rewritten by every fresh `npm install`."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    packages = lock["packages"]
    anvil = packages["node_modules/@foundry-rs/anvil"]
    optional = anvil["optionalDependencies"]
    assert len(optional) >= 4
    for name, version in optional.items():
        entry = packages.get(f"node_modules/{name}")
        assert entry is not None, f"{name} is missing from package-lock.json"
        assert entry["version"] == version
        assert entry["integrity"].startswith("sha512-")


def test_no_check_runs_inside_apes_chain_isolate():
    """ape's `chain.isolate()` swallows every exception raised in its block, a failed
    assertion included; sub-scenarios use `tests.helpers.isolated`, which re-raises."""
    offenders = [
        f"{path.name}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bwith\s+chain\.isolate\(", line)
    ]
    assert offenders == []


def test_every_module_imports():
    """Every module of the package and every script imports: a name moved between modules
    fails here, not in the one command that reaches it."""
    import importlib
    import pkgutil

    import computeshare

    names = [m.name for m in pkgutil.walk_packages(computeshare.__path__, "computeshare.")]
    for name in names:
        importlib.import_module(name)
    assert "computeshare.cli.offer" in names and "computeshare.format" in names


MOST_LINES = 600


def test_a_long_module_says_why_it_is_one_module():
    """One source of truth per concern: a module of the package over MOST_LINES lines is
    split by concern, or its docstring gives the reason it is not ("Why one module: ...")."""
    import ast

    modules = sorted((ROOT / "computeshare").rglob("*.py"))
    assert len(modules) > 30  # the package is there to check
    unexplained = []
    for path in modules:
        text = path.read_text()
        if len(text.splitlines()) <= MOST_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        reason = re.search(r"^Why one module: (\S.{40,})", docstring, re.M | re.S)
        if reason is None:
            unexplained.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
    assert unexplained == [], f"split these by concern or say why they are one: {unexplained}"


def _fixture_scopes() -> dict[str, set[str]]:
    """Each fixture name the suite defines, and the scopes its definitions have."""
    import ast

    scopes: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else decorator
                name_of = getattr(target, "attr", None) or getattr(target, "id", None)
                if name_of != "fixture":  # pytest.fixture, ape.fixture or a bare fixture
                    continue
                given = {"scope": "function", "name": node.name}
                for keyword in call.keywords if call else ():
                    if keyword.arg in given:
                        assert isinstance(keyword.value, ast.Constant), f"{path}: {node.name}"
                        given[keyword.arg] = keyword.value.value
                scopes.setdefault(given["name"], set()).add(given["scope"])
    return scopes


def test_no_fixture_name_is_defined_at_two_scopes():
    """ape's isolation lists a fixture under every scope that any definition of its name
    has across the session, not only the one a test uses. A `market` defined for the
    function in conftest and for the module in one test file gave every `market` test a
    module snapshot; ape then judged `market` stateless and did not rebase a session
    deployment first built under that snapshot, which the module's end reverted while its
    fixture kept it (a Governor read as zeros, once in about ten runs)."""
    scopes = _fixture_scopes()
    assert {"market", "dao", "_market", "_dao"} <= scopes.keys()
    clashes = {name: sorted(found) for name, found in scopes.items() if len(found) > 1}
    assert not clashes, clashes
