"""Model bundle: a folder with `model.onnx` and `manifest.json` (see proto/BUNDLE.md).

The bundle is the contract between training and the edge. The manifest says
exactly what the graph expects (counts per live second on one energy grid,
input "spectra" float32 [batch, channels]) and what it returns (float32
[batch, len(outputs)] in `units`), and pins the graph by its sha256 so a
daemon never runs a graph other than the one export checked.

json + hashlib (+ proto.energy) only: the edge reads manifests without torch or onnx.
Checking the graph's own I/O against the manifest needs a runtime; the edge
does it with ONNX Runtime (edge.models.ModelSession), export with onnx.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proto import __version__
from proto.domain import DOMAIN_FILE, STATISTIC, Domain, DomainError, Subspace
from proto.energy import EnergyGrid
from proto.identity import Identity, parse_identity
from proto.instrument import InstrumentError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
KINDS = ("rgb", "elements", "trust")
INPUT_QUANTITY = "counts_per_live_second"
INPUT_NAME = "spectra"
# inputs a bundle may declare beside `spectra` (BUNDLE.md): float32 [batch, 1], the pixel's
# live time and 1/0 whether the pixel is inside the bundle's training domain; float32
# [2, channels], the scan's continuum (proto.continuum)
LIVE_TIME_INPUT, IN_DOMAIN_INPUT, CONTINUUM_INPUT = "live_time_s", "in_domain", "continuum"
EXTRA_INPUTS = (LIVE_TIME_INPUT, IN_DOMAIN_INPUT, CONTINUUM_INPUT)
RGB_OUTPUTS = ("R", "G", "B")
MIN_OPSET = 7
# keys of the graph's own metadata_props that repeat the manifest's contract (optional)
META_KIND, META_GRID = "maxrf.kind", "maxrf.grid"
META_OUTPUTS, META_UNITS = "maxrf.outputs", "maxrf.units"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")


class BundleError(ValueError):
    """A bundle the edge must not run; the message names the folder and the reason."""


@dataclass(frozen=True)
class Manifest:
    kind: str  # "rgb" | "elements" | "trust"
    grid: EnergyGrid  # the input energy grid: input width == grid.channels
    output_name: str  # name of the graph's single output
    outputs: tuple[str, ...]  # one name per output column
    units: str  # of every output column
    opset: int  # default-domain ONNX opset of the graph
    sha256: str  # of model.onnx, lowercase hex
    created: str  # ISO 8601 UTC
    project_version: str  # proto.__version__ of the exporter
    training: dict[str, Any] = field(default_factory=dict)  # data, model type, config
    metrics: dict[str, Any] = field(default_factory=dict)  # parity, held-out scores
    # the instruments the model was trained for (proto.identity maps; () = not stated) and
    # its training domain (proto.domain.Domain as a dict; {} = not stated)
    instruments: tuple[dict[str, Any], ...] = ()
    domain: dict[str, Any] = field(default_factory=dict)
    extra_inputs: tuple[str, ...] = ()  # graph inputs beside `spectra` (EXTRA_INPUTS)
    format_version: int = FORMAT_VERSION
    input_quantity: str = INPUT_QUANTITY
    input_name: str = INPUT_NAME

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise BundleError("invalid manifest: " + "; ".join(problems))

    @property
    def channels(self) -> int:
        return self.grid.channels

    @property
    def identities(self) -> list[Identity]:
        """The instruments the model was trained for (checked in __post_init__)."""
        return [i for i in (parse_identity(m) for m in self.instruments) if i is not None]

    @property
    def training_domain(self) -> Domain:
        return Domain.from_dict(self.domain)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = self.grid.to_dict()
        d["outputs"] = list(self.outputs)
        d["instruments"] = [dict(m) for m in self.instruments]
        d["extra_inputs"] = list(self.extra_inputs)
        # stable, readable key order: identity first, provenance last
        order = ("format_version", "kind", "grid", "input_quantity", "input_name",
                 "extra_inputs", "output_name", "outputs", "units", "opset", "sha256",
                 "created", "project_version", "instruments", "domain", "training", "metrics")
        # optional keys only when stated, so a manifest without them reads as before
        optional = ("instruments", "domain", "extra_inputs")
        return {k: d[k] for k in order if d[k] or k not in optional}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        """Parse and validate; unknown keys are ignored (forward compatible)."""
        if not isinstance(d, dict):
            raise BundleError(f"manifest must be a JSON object, got {type(d).__name__}")
        version = d.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"manifest format_version must be an integer, got {version!r}")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"manifest format_version {version} unsupported (this reader: {FORMAT_VERSION})"
            )
        required = ("kind", "grid", "output_name", "outputs", "units", "opset", "sha256",
                    "created", "project_version", "input_quantity", "input_name")
        missing = [k for k in required if k not in d]
        if missing:
            raise BundleError(f"manifest lacks {', '.join(missing)}")
        grid = d["grid"]
        if not isinstance(grid, dict) or set(grid) < {"offset", "gain", "channels"}:
            raise BundleError(f"manifest grid must be {{offset, gain, channels}}, got {grid!r}")
        if not _is_int(grid["channels"]) or not all(
            _is_number(grid[k]) for k in ("offset", "gain")
        ):
            raise BundleError(f"manifest grid has non-numeric fields: {grid!r}")
        try:
            energy = EnergyGrid.from_dict(grid)
        except (ValueError, TypeError) as e:
            raise BundleError(f"manifest grid: {e}") from e
        outputs = d["outputs"]
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise BundleError(f"manifest outputs must be a list of strings, got {outputs!r}")
        for key in ("training", "metrics", "domain"):
            if not isinstance(d.get(key, {}), dict):
                raise BundleError(f"manifest {key} must be an object")
        instruments = d.get("instruments", [])
        if not isinstance(instruments, list) or not all(isinstance(m, dict) for m in instruments):
            raise BundleError("manifest instruments must be a list of objects")
        extra = d.get("extra_inputs", [])
        if not isinstance(extra, list) or not all(isinstance(n, str) for n in extra):
            raise BundleError(f"manifest extra_inputs must be a list of names, got {extra!r}")
        if not _is_int(d["opset"]):
            raise BundleError(f"manifest opset must be an integer, got {d['opset']!r}")
        return cls(
            kind=d["kind"], grid=energy, output_name=d["output_name"], outputs=tuple(outputs),
            units=d["units"], opset=d["opset"], sha256=d["sha256"], created=d["created"],
            project_version=d["project_version"], training=d.get("training", {}),
            metrics=d.get("metrics", {}), instruments=tuple(instruments),
            domain=d.get("domain", {}), extra_inputs=tuple(extra), format_version=version,
            input_quantity=d["input_quantity"], input_name=d["input_name"],
        )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _problems(m: Manifest) -> list[str]:
    p: list[str] = []
    if m.kind not in KINDS:
        p.append(f"kind {m.kind!r} is not one of {KINDS}")
    if not isinstance(m.grid, EnergyGrid):
        p.append("grid must be an EnergyGrid")
    if m.input_quantity != INPUT_QUANTITY:
        p.append(f"input_quantity {m.input_quantity!r} (the edge only feeds {INPUT_QUANTITY!r})")
    if m.input_name != INPUT_NAME:
        p.append(f"input_name {m.input_name!r} (must be {INPUT_NAME!r})")
    if not isinstance(m.output_name, str) or not _NAME.match(m.output_name):
        p.append(f"output_name {m.output_name!r} is not a plain identifier")
    elif m.output_name == m.input_name:
        p.append("output_name equals input_name")
    extra = m.extra_inputs
    unknown = [n for n in extra if n not in EXTRA_INPUTS]
    if unknown or len(set(extra)) != len(extra):
        p.append(f"extra_inputs {list(extra)}: each at most once, of {list(EXTRA_INPUTS)}")
    outs = m.outputs
    if not isinstance(outs, tuple) or not outs or not all(isinstance(o, str) and o for o in outs):
        p.append(f"outputs must be non-empty names, got {outs!r}")
    elif len(set(outs)) != len(outs):
        p.append(f"outputs repeat a name: {list(outs)}")
    elif m.kind == "rgb" and outs != RGB_OUTPUTS:
        p.append(f"rgb outputs must be {list(RGB_OUTPUTS)}, got {list(outs)}")
    elif m.kind == "trust" and len(outs) != 1:
        p.append(f"trust has exactly one output (a score), got {list(outs)}")
    if not isinstance(m.units, str) or not m.units:
        p.append("units must be a non-empty string")
    if not _is_int(m.opset) or m.opset < MIN_OPSET:
        p.append(f"opset {m.opset!r} (need an integer >= {MIN_OPSET})")
    if not isinstance(m.sha256, str) or not _SHA256.match(m.sha256):
        p.append("sha256 must be 64 lowercase hex digits")
    if not isinstance(m.created, str) or not _is_iso_time(m.created):
        p.append(f"created {m.created!r} is not an ISO 8601 time")
    if not isinstance(m.project_version, str) or not m.project_version:
        p.append("project_version must be a non-empty string")
    if m.format_version != FORMAT_VERSION:
        p.append(f"format_version {m.format_version!r} (this reader: {FORMAT_VERSION})")
    for i, ident in enumerate(m.instruments):
        try:
            if parse_identity(ident) is None:
                p.append(f"instruments[{i}] has no fingerprint")
        except InstrumentError as e:
            p.append(f"instruments[{i}]: {e}")
    try:
        Domain.from_dict(m.domain)
    except DomainError as e:
        p.append(str(e))
    return p


def check_graph_metadata(manifest: Manifest, meta: dict[str, str]) -> None:
    """Raise BundleError if the graph's own maxrf.* metadata (where present) disagrees
    with the manifest. `meta` is ORT's get_modelmeta().custom_metadata_map."""
    if META_KIND in meta and meta[META_KIND] != manifest.kind:
        raise BundleError(f"graph is a {meta[META_KIND]!r} model, manifest says {manifest.kind!r}")
    if META_GRID in meta:
        try:
            grid = EnergyGrid.from_dict(json.loads(meta[META_GRID]))
        except (ValueError, TypeError, KeyError) as e:
            raise BundleError(f"graph metadata {META_GRID} unreadable ({e})") from None
        if grid != manifest.grid:
            raise BundleError(f"graph was exported for grid {grid.to_dict()}, manifest says "
                              f"{manifest.grid.to_dict()}")
    if META_OUTPUTS in meta:
        try:
            outputs = tuple(json.loads(meta[META_OUTPUTS]))
        except (ValueError, TypeError) as e:
            raise BundleError(f"graph metadata {META_OUTPUTS} unreadable ({e})") from None
        if outputs != manifest.outputs:
            raise BundleError(f"graph outputs are {list(outputs)}, manifest says "
                              f"{list(manifest.outputs)}")


def _is_iso_time(s: str) -> bool:
    try:
        datetime.fromisoformat(s)
    except ValueError:
        return False
    return True


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle. `model_bytes` are the bytes whose hash was checked: hand
    those (not the path) to the runtime, so a file swapped after the check is never run."""

    folder: Path
    manifest: Manifest
    model_path: Path
    model_bytes: bytes = field(repr=False)
    subspace: Subspace | None = None  # the in-domain test, when the manifest declares one


def read_manifest(folder: str | Path) -> Manifest:
    """Parse and validate `<folder>/manifest.json` (no hash check)."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise BundleError(f"{folder}: bundle folder does not exist")
    if not path.is_file():
        raise BundleError(f"{folder}: missing {MANIFEST_FILE}")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from e
    try:
        return Manifest.from_dict(d)
    except BundleError as e:
        raise BundleError(f"{path}: {e}") from None


def load_bundle(folder: str | Path) -> Bundle:
    """Read, validate and hash-check a bundle; raises BundleError with the reason."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise BundleError(f"{folder}: missing {MODEL_FILE}")
    data = model_path.read_bytes()
    digest = sha256_bytes(data)
    if digest != manifest.sha256:
        raise BundleError(
            f"{model_path}: sha256 {digest[:16]}... does not match the manifest's "
            f"{manifest.sha256[:16]}... (file changed or corrupted since export)"
        )
    return Bundle(folder, manifest, model_path, data, _subspace(folder, manifest))


def _subspace(folder: Path, manifest: Manifest) -> Subspace | None:
    """The hash-checked in-domain subspace (DOMAIN_FILE) the manifest declares, else None."""
    sub = manifest.training_domain.subspace
    if sub is None:
        return None
    path = folder / DOMAIN_FILE
    if not path.is_file():
        raise BundleError(f"{folder}: missing {DOMAIN_FILE} (the manifest declares a domain)")
    data = path.read_bytes()
    if sha256_bytes(data) != sub["sha256"]:
        raise BundleError(f"{path}: sha256 does not match the manifest's (file changed or "
                          "corrupted since export)")
    try:
        subspace = Subspace.from_bytes(data, sub["threshold"], sub["components"],
                                       sub["reference_counts"], sub.get("bin", 1))
    except DomainError as e:
        raise BundleError(f"{path}: {e}") from None
    if subspace.channels != manifest.grid.channels:
        raise BundleError(f"{path}: {subspace.channels} channels, the grid has "
                          f"{manifest.grid.channels}")
    return subspace


def write_bundle(folder: str | Path, onnx_bytes: bytes, manifest_fields: dict[str, Any],
                 subspace: Subspace | None = None, files: dict[str, bytes] | None = None
                 ) -> Bundle:
    """Write model.onnx + manifest.json (+ domain.npy) into `folder`; return the loaded bundle.

    `manifest_fields` holds kind, grid (EnergyGrid or dict), output_name, outputs,
    units, opset and optionally training, metrics, instruments, domain; sha256, created,
    project_version and format_version are filled in here, and with `subspace` the
    domain's `subspace` entry (file, sha256, components, threshold, statistic). `files`:
    other files the manifest names (name -> bytes, e.g. the energy-axis check). Each
    file is written to a temporary name and renamed, the manifest last, so a crash
    never leaves a bundle that verifies.
    """
    folder = Path(folder)
    fields = dict(manifest_fields)
    for key in ("sha256", "created", "project_version", "format_version"):
        fields.pop(key, None)
    grid = fields.get("grid")
    if isinstance(grid, EnergyGrid):
        fields["grid"] = grid.to_dict()
    fields.setdefault("input_quantity", INPUT_QUANTITY)
    fields.setdefault("input_name", INPUT_NAME)
    fields.setdefault("training", {})
    fields.setdefault("metrics", {})
    domain_bytes = b""
    if subspace is not None:
        domain_bytes = subspace.to_bytes()
        fields["domain"] = {**fields.get("domain", {}), "subspace": {
            **fields.get("domain", {}).get("subspace", {}), "file": DOMAIN_FILE,
            "sha256": sha256_bytes(domain_bytes), "components": len(subspace.components),
            "threshold": subspace.threshold, "reference_counts": subspace.reference_counts,
            "bin": subspace.bin, "statistic": STATISTIC}}
    fields["outputs"] = list(fields.get("outputs", []))
    fields.update(
        format_version=FORMAT_VERSION,
        sha256=sha256_bytes(onnx_bytes),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        project_version=__version__,
    )
    manifest = Manifest.from_dict(json.loads(json.dumps(fields, allow_nan=False)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).unlink(missing_ok=True)  # invalid until both are in place
    _atomic_write(folder / MODEL_FILE, onnx_bytes)
    for name, data in (files or {}).items():
        _atomic_write(folder / name, data)
    if domain_bytes:
        _atomic_write(folder / DOMAIN_FILE, domain_bytes)
    else:
        (folder / DOMAIN_FILE).unlink(missing_ok=True)  # not a stale one from a re-export
    _atomic_write(folder / MANIFEST_FILE, manifest.to_json().encode())
    return load_bundle(folder)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
