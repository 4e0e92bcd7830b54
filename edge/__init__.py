"""The edge daemon: live RGB, element-map and trust previews from a streamed MA-XRF scan.

numpy + onnxruntime + pyzmq + msgpack + h5py + proto only (never torch, training
or export). `python -m edge serve|replay|watch|status|reload`.

    scanner --PUSH--> [PULL] daemon.py: decode (proto.wire) -> scan.py checks
        -> recorder.py (proto.dataset, flushed <= 1 s, before inference)
        -> scan.py: the stream's energy axis checked on its first pixels (proto.energy_axis)
        -> inference.py (rebin per model grid, / live time, micro-batch, ORT)
        -> canvas.py -> publisher.py [PUB rgb/elements/trust/status, ROUTER snapshot]
    clients: watch.py (Clone pattern, PNGs via png.py), `edge status`, any subscriber.
"""

import os

# numpy's BLAS would spin a thread per core for the in-domain projections (16 x 250 x 64):
# on a busy 2-core box one such call took 33 ms instead of 0.5 ms. ONNX Runtime has its own
# threads; set before numpy loads (python -m edge imports this package first).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
