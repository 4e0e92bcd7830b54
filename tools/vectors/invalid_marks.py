"""Invalid vectors of what version 1.1 added (see tools.vectors.marks): a malformed instrument
identity, a zero beam spot, a preview mask or threshold out of shape or range, a status naming
an unknown topic or a fraction over one."""

from __future__ import annotations

from tools.vectors.mutate import Case, drop, mut, put


def marks_invalid(b: dict[str, dict]) -> list[Case]:
    start, trust = b["scan_start_identified"], b["preview_trust_marked"]
    status = b["status_foreign"]
    return [
        ("scan_start_fingerprint_short", mut(start, put("instrument.fingerprint", "b2639cdb")),
         "bad_value", "instrument.fingerprint", "64 lowercase hex digits"),
        ("scan_start_fingerprint_not_description",
         mut(start, put("instrument.excitation.anode", "W")),
         "bad_value", "instrument.fingerprint", "the description hashes to another fingerprint"),
        ("scan_start_fingerprint_without_name", mut(start, drop("instrument.name")),
         "bad_value", "instrument.name", "a fingerprint needs the instrument's name"),
        ("scan_start_description_incomplete", mut(start, drop("instrument.detector")),
         "bad_value", "instrument", "a description has all four tables"),
        ("scan_start_spot_zero", mut(start, put("beam_spot_um", 0.0)),
         "bad_value", "beam_spot_um", "optional, but positive when given"),
        ("preview_domain_shape", mut(trust, put("domain.shape", [3, 2])),
         "bad_shape", "domain.shape", "the mask covers the region (2 x 3)"),
        ("preview_domain_two", mut(trust, put("domain.bytes", bytes([0, 0, 2, 0, 0, 0]))),
         "bad_value", "domain", "a mask holds 0 or 1"),
        ("preview_threshold_negative", mut(trust, put("threshold", -1.0)),
         "bad_value", "threshold", ""),
        ("preview_foreign_as_int", mut(trust, put("foreign", 1)), "bad_type", "foreign", ""),
        ("status_foreign_topic", mut(status, put("foreign", ["status"])),
         "bad_value", "foreign.0", ""),
        ("status_out_of_domain_over_one", mut(status, put("out_of_domain.elements", 1.5)),
         "bad_value", "out_of_domain.elements", "a fraction is in 0..1"),
    ]

