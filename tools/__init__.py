"""Developer tools that are not part of the installed project (run from the repo root)."""
