"""`python -m edge view`: the operator's live web page (the optional `view` extra).

- `state`: the viewer's one copy of the daemon's canvases, and their overview level;
- `clone`: the ZeroMQ Clone client (subscribe, snapshot, updates) feeding `state`;
- `frames`: what goes to a browser: only-what-changed regions, per-browser bounded;
- `server`: the aiohttp web server (page, static files, WebSocket, pixel requests);
- `cli`: flags and the loopback rule; imports aiohttp only when the view runs.

Only `server` imports aiohttp: the daemon and the `edge` extra never need it.
"""
