"""Command-line parsing from a typed dataclass: one ``--flag`` per field, its help from the field's metadata."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import TypeVar

T = TypeVar("T")


def parse_config(config_cls: type[T], argv: list[str] | None, description: str | None) -> T:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(config_cls):
        kind = int if f.type in ("int", "int | None") else str
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind,
                            default=None if f.default is MISSING else f.default, help=f.metadata["help"])
    return config_cls(**vars(parser.parse_args(argv)))
