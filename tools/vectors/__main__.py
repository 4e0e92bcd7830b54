"""`python -m tools.vectors [--out DIR] [--check]`: regenerate or check the golden vectors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from tools.vectors import HERE, differences, write


class _Parser(argparse.ArgumentParser):
    """Refuses anything it does not know with one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m tools.vectors",
        description="Write the wire protocol's golden vectors (valid/ and invalid/) into a "
        "folder, deterministically; or check that a folder holds exactly what would be written.",
    )
    p.add_argument("--out", type=Path, default=HERE, metavar="DIR",
                   help="folder holding valid/ and invalid/ (default: proto/vectors)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list the files that differ")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        stale = differences(args.out)
        for rel in stale[:20]:
            print(f"differs: {args.out / rel}")
        print(f"{len(stale)} vector files differ under {args.out}" if stale
              else f"vectors under {args.out} are up to date")
        return 1 if stale else 0
    print(f"wrote {write(args.out)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
