"""A lab's archive on Dask: PyMca labels and model reprocessing for many scans at once.

`python -m archive labels|reprocess` (archive/__main__.py). The top layer: it may import
training, edge and proto; nothing imports it. Work is cut into pixel blocks that follow
the HDF5 chunks; tasks only read; the client alone writes, one dataset at a time.
"""
