"""What every command-line tool of the platform repeats: argument types that refuse nonsense with
a one-line error (argparse prints it with the usage and exits 2), and the program name a person
typed. `mlops produce|train|audit ...` run the tools as programs of their own (services are never
imported by infra); the CLI passes `MLOPS_PROG` so their usage and errors say `mlops produce`, not
`python -m workbench.demo_producer`.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)

PROG_ENV = "MLOPS_PROG"


def prog(default: str) -> str:
    """The program's name for usage and errors: `mlops <command>` when run through the CLI."""
    return os.environ.get(PROG_ENV) or default


def _number(convert: Callable[[str], Number], what: str, *, allow_zero: bool) -> Callable[[str], Number]:
    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not math.isfinite(value):  # float("nan") and float("inf") parse
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if value < 0 or (value == 0 and not allow_zero):
            wanted = "zero or more" if allow_zero else "positive"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return parse


positive_float = _number(float, "a number", allow_zero=False)
non_negative_float = _number(float, "a number", allow_zero=True)
positive_int = _number(int, "a whole number", allow_zero=False)
non_negative_int = _number(int, "a whole number", allow_zero=True)
