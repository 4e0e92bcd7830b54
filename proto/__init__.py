"""Contracts shared by the scanner, the edge daemon, training and export.

This package imports nothing of ours and never torch: the wire protocol
(`proto.wire`), the dataset file (`proto.dataset`), the model bundle
(`proto.bundle`), the energy grid every spectrum is rebinned onto
(`proto.energy`) and the element list (`proto.elements`).
"""

__version__ = "0.1.0"
