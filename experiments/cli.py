"""Command-line parsing from a typed dataclass, with tyro: one ``--flag`` per field (``env_id`` becomes
``--env-id``), parsed to the field's type (``int``, ``float``, ``str``, ``X | None``; a ``bool`` is
``--flag`` / ``--no-flag``), its help from the field's ``metadata["help"]``.

A value of the wrong type or an unknown flag exits with status 2 and a message naming the flag, as argparse does.
"""

from __future__ import annotations

from typing import TypeVar

import tyro

T = TypeVar("T")


def parse_config(config_cls: type[T], argv: list[str] | None, description: str | None) -> T:
    """``config_cls`` filled from ``argv`` (``sys.argv[1:]`` when None); ``description`` heads ``--help``."""
    return tyro.cli(config_cls, args=argv, description=description)
