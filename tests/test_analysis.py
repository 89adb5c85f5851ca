"""The static-analysis gate: findings are matched with justifications written in the code."""

from __future__ import annotations

import pytest

from devtools.analysis import ANALYZER, CONTRACTS, justifications, main

SOURCE = """# analysis: timestamp_dependence: windows last days.

@external
def pay():
    # analysis: cei_violation, send_in_loop: bounded and trusted.
    pass

def other():
    # analysis: incorrect_erc20_return: asserted by the caller.
    pass
"""


def test_justifications_are_scoped_to_the_contract_or_a_function():
    assert justifications(SOURCE) == {
        ("*", "timestamp_dependence"): "windows last days.",
        ("pay", "cei_violation"): "bounded and trusted.",
        ("pay", "send_in_loop"): "bounded and trusted.",
        ("other", "incorrect_erc20_return"): "asserted by the caller.",  # digits in the name
    }


@pytest.mark.skipif(not ANALYZER.exists(), reason="`make analyze` installs vyper-guard")
def test_every_finding_is_justified_and_an_unexplained_one_fails(tmp_path, capsys):
    contract = CONTRACTS / "JobEscrow.vy"
    assert main([str(contract)]) == 0
    stripped = tmp_path / contract.name
    source = contract.read_text().splitlines()
    stripped.write_text("\n".join(line for line in source if "# analysis:" not in line))
    assert main([str(stripped)]) == 1
    out = capsys.readouterr().out
    assert "NOT JUSTIFIED" in out and ", 0 not justified" not in out.splitlines()[-1]
