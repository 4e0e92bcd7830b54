"""The edge daemon: live RGB, element-map and trust previews from a streamed MA-XRF scan.

numpy + onnxruntime + pyzmq + msgpack + h5py + proto only (never torch, training
or export). `python -m edge serve|replay|watch|status|reload`.

    scanner --PUSH--> [PULL] daemon.py: decode (proto.wire) -> scan.py checks
        -> recorder.py (proto.dataset, flushed <= 1 s, before inference)
        -> inference.py (rebin per model grid, / live time, micro-batch, ORT)
        -> canvas.py -> publisher.py [PUB rgb/elements/trust/status, ROUTER snapshot]
    clients: watch.py (Clone pattern, PNGs via png.py), `edge status`, any subscriber.
"""
