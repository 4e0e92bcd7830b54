"""`python -m proto.vectors [folder]`: regenerate the golden vectors (deterministic)."""

import sys
from pathlib import Path

from proto.vectors import HERE, write

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
print(f"wrote {write(folder)} files under {folder}")
