"""Static analysis of the contracts with vyper-guard, every finding fixed or justified.

    python -m devtools.analysis [--analyzer PATH] [contracts/X.vy ...]

Runs `vyper-guard analyze` on each deployable contract and matches every finding with a
justification written in the contract itself:

    # analysis: <detector>[, <detector>]: <why this finding is not a problem here>

A justification in a contract's header (before its first function) covers the whole
contract; one inside a function covers that function. Prints every finding with its
justification and exits non-zero when a finding has none, so a new finding fails CI until
it is fixed or explained next to the code it is about.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devtools import PROJECT_ROOT

ANALYZER = PROJECT_ROOT / ".venv-analysis" / "bin" / "vyper-guard"
CONTRACTS = PROJECT_ROOT / "contracts"
_JUSTIFICATION = re.compile(r"#\s*analysis:\s*([a-z0-9_,\s]+?):\s*(.+)$")
_FUNCTION = re.compile(r"^def\s+(\w+)\s*\(")


@dataclass
class Finding:
    contract: str
    detector: str
    severity: str
    line: int
    function: str
    title: str
    reason: str | None = None


def justifications(source: str) -> dict[tuple[str, str], str]:
    """(function or "*" for the contract, detector) -> reason, from `# analysis:` comments."""
    found: dict[tuple[str, str], str] = {}
    scope = "*"
    for text in source.splitlines():
        if match := _FUNCTION.match(text):
            scope = match.group(1)
        if match := _JUSTIFICATION.search(text):
            for detector in match.group(1).split(","):
                found[(scope, detector.strip())] = match.group(2).strip()
    return found


def _function_at(functions: list[dict], line: int) -> str:
    for function in functions:
        if function["start_line"] <= line <= function["end_line"]:
            return function["name"]
    return "*"


def analyze(path: Path, analyzer: Path = ANALYZER) -> list[Finding]:
    """Every finding of vyper-guard on `path`, each with its justification (or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        report_file = Path(tmp) / "report.json"
        command = [str(analyzer), "analyze", str(path), "-f", "json", "-o", str(report_file)]
        done = subprocess.run(
            [*command, "--semantic-mode", "source"],
            capture_output=True,
            text=True,
        )
        if not report_file.exists():
            raise RuntimeError(f"vyper-guard failed on {path.name}: {done.stderr.strip()}")
        report = json.loads(report_file.read_text())
    functions = report["analysis_context"]["complexity_metrics"]["functions"]
    reasons = justifications(path.read_text())
    findings = []
    for item in report["findings"]:
        function = _function_at(functions, item["line_number"])
        detector = item["detector"]
        reason = reasons.get((function, detector)) or reasons.get(("*", detector))
        findings.append(
            Finding(
                path.stem,
                detector,
                item["severity"],
                item["line_number"],
                function,
                item["title"],
                reason,
            )
        )
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contracts", nargs="*", type=Path)
    parser.add_argument("--analyzer", type=Path, default=ANALYZER)
    args = parser.parse_args(argv)
    paths = args.contracts or sorted(CONTRACTS.glob("*.vy"))
    unjustified = total = 0
    for path in paths:
        findings = analyze(path, args.analyzer)
        total += len(findings)
        print(f"{path.stem}: {len(findings)} findings")
        for f in findings:
            verdict = f"justified: {f.reason}" if f.reason else "NOT JUSTIFIED"
            print(f"  {f.severity:<8} {f.detector:<26} {f.function}:{f.line}  {verdict}")
            unjustified += f.reason is None
    print(f"vyper-guard: {total} findings in {len(paths)} contracts, {unjustified} not justified")
    return 1 if unjustified else 0


if __name__ == "__main__":
    sys.exit(main())
