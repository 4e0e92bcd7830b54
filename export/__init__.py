"""Trained models -> ONNX model bundles for the edge (see proto/BUNDLE.md).

    python -m export default --trained artifacts/trained --out models

Modules: graph (ONNX surgery: preprocessing ops, I/O contract, size limit),
torch_export, sklearn_export, parity (ONNX Runtime vs the framework), heldout
(held-out spectra), bundles (convert -> parity -> write), tiny (test bundles
without training).
"""
