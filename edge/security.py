"""Who may talk to the daemon: opt-in ZeroMQ CURVE, the loopback rule, the models root.

CURVE (ZeroMQ RFC 26) encrypts and authenticates every connection; pyzmq's
`zmq.auth.ThreadAuthenticator` is the ZAP handler that admits only clients whose
public key is in an allow-list folder. A client without an allowed key never
completes the handshake, so not one of its messages reaches the daemon's sockets
(nothing to count, nothing to refuse).

One key folder, made by `python -m edge keys DIR`, serves both ends on one box:

    DIR/server.key          the daemon's public key (clients need it)
    DIR/server.key_secret   the daemon's secret key (stays on the daemon's box)
    DIR/client.key_secret   a client's key pair (replay, watch, status, reload)
    DIR/clients/*.key       the allow-list: public keys of the clients admitted

Across machines copy `server.key` and a client's `.key_secret` to the client, and
put each client's public `.key` into the daemon's `clients/` folder.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER = "server"
CLIENT = "client"
CLIENTS = "clients"


class SecurityError(ValueError):
    """A key or exposure problem; str() is one line that says what to do."""


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    clients: Path  # allow-list folder of client public keys


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server: bytes  # the daemon's public key


def create_keys(folder: str | Path, client: str = CLIENT) -> list[Path]:
    """A server key pair (unless one exists) and a client key pair named `client`,
    whose public key goes into the allow-list. Secret files are made owner-only."""
    folder = Path(folder)
    allow = folder / CLIENTS
    allow.mkdir(parents=True, exist_ok=True)
    if (folder / f"{client}.key_secret").exists():
        raise SecurityError(f"{folder / client}.key_secret exists already: choose another "
                            f"--client name or another folder")
    made: list[Path] = []
    if not (folder / f"{SERVER}.key_secret").exists():
        made += [Path(p) for p in zmq.auth.create_certificates(folder, SERVER)]
    public, secret = (Path(p) for p in zmq.auth.create_certificates(folder, client))
    shutil.copy(public, allow / public.name)
    made += [public, secret, allow / public.name]
    for p in made:
        if p.name.endswith(".key_secret"):
            os.chmod(p, 0o600)
    return made


def _load(path: Path, what: str, need_secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise SecurityError(f"{what} {path} not found: make keys with `python -m edge keys DIR`")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise SecurityError(f"{what} {path} is not a ZeroMQ certificate ({e})") from None
    if need_secret and not secret:
        raise SecurityError(f"{what} {path} holds no secret key: give the .key_secret file")
    return public, secret


def load_server(secret_file: str | Path, clients: str | Path) -> ServerKeys:
    public, secret = _load(Path(secret_file), "server key", need_secret=True)
    allow = Path(clients)
    if not allow.is_dir() or not any(allow.glob("*.key")):
        raise SecurityError(f"client allow-list {allow} holds no *.key file: add the clients' "
                            f"public keys (`python -m edge keys DIR` makes one)")
    assert secret is not None
    return ServerKeys(public, secret, allow)


def server_keys(folder: str = "", secret_file: str = "", clients: str = "") -> ServerKeys | None:
    """The daemon's CURVE keys from its settings (None: CURVE off): a key folder made by
    `python -m edge keys`, or its two parts given separately (they override the folder's)."""
    if not (folder or secret_file or clients):
        return None
    base = Path(folder) if folder else None
    secret = Path(secret_file) if secret_file else (base / f"{SERVER}.key_secret" if base else None)
    allow = Path(clients) if clients else (base / CLIENTS if base else None)
    if secret is None or allow is None:
        raise SecurityError("CURVE needs the server's secret key (curve_server_key) and the "
                            "clients' allow-list folder (curve_clients), or --curve-keys DIR")
    return load_server(secret, allow)


def load_client(folder: str | Path, name: str = CLIENT) -> ClientKeys:
    folder = Path(folder)
    server, _ = _load(folder / f"{SERVER}.key", "the daemon's public key", need_secret=False)
    public, secret = _load(folder / f"{name}.key_secret", "client key", need_secret=True)
    assert secret is not None
    return ClientKeys(public, secret, server)


class Authenticator:
    """The ZAP handler of a context: admits CURVE clients in the allow-list only."""

    def __init__(self, ctx: zmq.Context, keys: ServerKeys) -> None:
        self.keys = keys
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(keys.clients))

    def secure(self, sock: zmq.Socket) -> None:
        """Make a socket a CURVE server (before it binds)."""
        sock.curve_secretkey = self.keys.secret
        sock.curve_publickey = self.keys.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()


def secure_client(sock: zmq.Socket, keys: ClientKeys | None) -> zmq.Socket:
    """Make a socket a CURVE client of the daemon (before it connects); None: plain."""
    if keys is not None:
        sock.curve_secretkey = keys.secret
        sock.curve_publickey = keys.public
        sock.curve_serverkey = keys.server
    return sock


def is_loopback(endpoint: str) -> bool:
    """True for ipc:// and inproc:// and for tcp:// on a loopback address or `localhost`."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: reachable from outside


def check_exposure(endpoints: tuple[str, ...], curve: bool, insecure: bool) -> None:
    """Refuse to serve beyond loopback without CURVE, unless the operator said --insecure."""
    exposed = [e for e in endpoints if not is_loopback(e)]
    if exposed and not curve and not insecure:
        raise SecurityError(
            f"{', '.join(exposed)} would be reachable from other machines without "
            f"authentication: give --curve-keys DIR (`python -m edge keys DIR` makes one) "
            f"or, on a trusted network only, --insecure")


def inside_root(root: str | Path, name: str) -> Path | None:
    """The folder `name` (relative, inside `root`) resolved, or None for anything that
    would leave the root (absolute paths, `..`, symlinks pointing out). The answer is
    the same whether or not an outside path exists, so it reveals nothing."""
    base = Path(root).resolve()
    if not name or Path(name).is_absolute() or "\x00" in name:
        return None
    target = (base / name).resolve()
    return target if target == base or base in target.parents else None


def hide_root(text: str, root: str | Path) -> str:
    """`text` with the models root's location replaced by `models`: what the daemon says
    about its bundles names them relative to that folder, never where it is on disk."""
    places = {str(Path(root).resolve()), str(root)}
    for where in sorted(places, key=len, reverse=True):
        if "/" in where.strip("/"):  # a location, not a bare name that words could contain
            text = text.replace(where, "models")
    return text
