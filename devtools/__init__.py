"""Development tooling over a source checkout: the static-analysis gate, ABI export, gas
accounting, benchmark population and reference kernels. Scripts, tests and the Makefile use
it; the `computeshare` package never imports it.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout this package is in
