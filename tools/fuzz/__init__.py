"""A bounded fuzzer of the wire protocol for the edge daemon (`make fuzz`, issue 11).

`generate` makes hostile messages by class, from a `random.Random` (so a seed, or
hypothesis, replays them): random bytes, golden vectors (proto/vectors) mutated byte by
byte, valid messages mutated field by field (tools.vectors' editable maps), valid
messages for scans nobody opened or of types that do not belong on ingest, multipart
frames, oversize messages; and hostile requests for the request channel. `predict` says
what the daemon must answer to each: the refusal reason of an ingest message (none may be
accepted: the fuzzer never sends what could touch the real scan), and whether a request's
reply is a counted refusal. The runner is bench/fuzz.py; tests/test_edge_fuzz.py is a
small hypothesis-driven version inside `make test`.
"""

from tools.fuzz.generate import INGEST_CLASSES, REQUEST_CLASSES, ingest_message, request_message
from tools.fuzz.predict import Expect, ingest_reason, request_refused

__all__ = [
    "INGEST_CLASSES",
    "REQUEST_CLASSES",
    "Expect",
    "ingest_message",
    "ingest_reason",
    "request_message",
    "request_refused",
]
