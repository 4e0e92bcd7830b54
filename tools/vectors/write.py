"""The vector files in memory, written to a folder or compared with one (deterministic)."""

from __future__ import annotations

from pathlib import Path

from proto.wire import Message, encode
from tools.vectors.describe import describe, dumps
from tools.vectors.invalid import invalid_cases
from tools.vectors.valid import hand_packed_valid, valid_cases

SUBFOLDERS = ("valid", "invalid")
SUFFIXES = (".msgpack", ".json")


def files() -> dict[str, bytes]:
    """Relative path ("valid/NAME.msgpack", ...) -> content of every vector file."""
    out: dict[str, bytes] = {}

    def pair(stem: str, buf: bytes, desc: dict) -> None:
        out[f"{stem}.msgpack"] = buf
        out[f"{stem}.json"] = (dumps(desc) + "\n").encode()

    for name, msg, layout in valid_cases():
        desc = {"type": msg.TYPE, "encode": {"layout": layout}, **_fields(msg)}
        pair(f"valid/{name}", encode(msg, layout=layout), desc)
    for name, buf, msg in hand_packed_valid():
        pair(f"valid/{name}", buf, {"type": msg.TYPE, "encode": None, **_fields(msg)})
    for name, buf, reason, path, why in invalid_cases():
        pair(f"invalid/{name}", buf, {"reason": reason, "path": path, "why": why})
    return out


def _fields(msg: Message) -> dict:
    return {"fields": describe(msg)["fields"]}


def _existing(folder: Path) -> list[Path]:
    return [p for sub in SUBFOLDERS if (folder / sub).is_dir()
            for p in sorted((folder / sub).iterdir()) if p.suffix in SUFFIXES]


def write(folder: Path) -> int:
    """Rewrite valid/ and invalid/ under `folder`; returns the number of files written."""
    content = files()  # everything built before anything on disk changes
    for old in _existing(folder):
        old.unlink()
    for sub in SUBFOLDERS:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for rel, data in content.items():
        (folder / rel).write_bytes(data)
    return len(content)


def differences(folder: Path) -> list[str]:
    """Files under `folder` that regeneration would add, change or remove (none: up to date)."""
    content = files()
    have = {p.relative_to(folder).as_posix(): p for p in _existing(folder)}
    changed = [rel for rel, data in content.items()
               if rel not in have or have[rel].read_bytes() != data]
    return sorted(changed + [rel for rel in have if rel not in content])
