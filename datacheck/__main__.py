"""``python -m datacheck`` and the ``datacheck`` console script."""

from __future__ import annotations


def main() -> None:
    from .cli import cli

    cli(prog_name="datacheck")


if __name__ == "__main__":
    main()
