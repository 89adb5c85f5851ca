"""The set-up `make setup` runs leaves the checkout as committed."""

from __future__ import annotations

import json
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
