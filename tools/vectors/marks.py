"""Valid vectors of what version 1.1 added: the instrument identity in `scan_start` (name,
fingerprint, description), unknown optics left out, and the `foreign` flag, out-of-domain mask,
trust threshold and out-of-domain fractions on previews and status."""

from __future__ import annotations

import numpy as np

from proto.identity import identity_map
from proto.instrument import loads
from proto.wire import Message, Preview, ScanStart, Status

# A small description written here (not a shipped TOML) so the vectors never change with one.
EXAMPLE = loads("""
name = "Example XRF"
[excitation]
kind = "tube"
anode = "Rh"
voltage_kv = 50.0
window = { material = "Be", thickness_um = 100.0 }
[detector]
type = "SDD"
thickness_um = 450.0
fwhm_mn_ka_ev = 140.0
[geometry]
incidence_deg = 90.0
takeoff_deg = 45.0
[calibration]
offset_kev = 0.0
gain_kev = 0.01
channels = 2048
""", source="example")


def marks_valid() -> list[tuple[str, Message, str]]:
    identified = ScanStart("s2", 4, 3, 2048, 0.0, 0.01, 0.01,
                           instrument=identity_map(EXAMPLE), counts_dtype="<u2")
    unknown_optics = ScanStart("s3", 4, 3, 16, 0.0, 0.02, 0.1,
                               instrument={"name": "Example XRF",
                                           "fingerprint": EXAMPLE.fingerprint()})
    trust = Preview("trust", "s2", 5, (0, 0, 3, 2), True, ("trust",),
                    np.array([[0.1, 0.2, 3.5], [0.0, 0.4, 0.3]], "<f4"), foreign=True,
                    domain=np.array([[0, 0, 1], [0, 0, 0]], "|u1"), threshold=1.25)
    elements = Preview("elements", "s2", 5, (1, 0, 1, 2), False, ("Fe",),
                       np.array([[[10.0], [20.0]]], "<f4"), domain=np.array([[1], [0]], "|u1"))
    status = Status("s2", 5, "scanning", counters={"accepted": 6},
                    foreign=("elements", "trust"),
                    out_of_domain={"rgb": 0.0, "elements": 0.5, "trust": 1 / 6})
    return [
        ("scan_start_identified", identified, "auto"),
        ("scan_start_fingerprint_only", unknown_optics, "auto"),
        ("preview_trust_marked", trust, "auto"),
        ("preview_elements_domain", elements, "auto"),
        ("status_foreign", status, "auto"),
    ]
