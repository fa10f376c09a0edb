"""CURVE encryption and authentication for the link, and the bind-safety rule.

The arm is a CURVE *server*: it has a key pair and an allow-list directory of console public keys.
A console is a CURVE *client*: it has its own key pair and knows the arm's public key. pyzmq's ZAP
authenticator (a thread in the arm's process) admits only allow-listed keys, so an unknown key
never completes the handshake and none of its messages reach the arm's code.

Binding to anything but loopback (or ipc:// / inproc://) without keys is refused unless the user
explicitly asks for ``insecure``: a surgical arm must not be reachable unauthenticated by accident.

Key files are the ZeroMQ certificate format written by ``zmq.auth.create_certificates``:
``NAME.key`` (public, shareable) and ``NAME.key_secret`` (secret, mode 0600).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d+|\*)$")


class InsecureBindError(RuntimeError):
    """Refused to bind a non-loopback address without CURVE keys."""


class KeyFileError(RuntimeError):
    """A key file is missing or unreadable."""


def endpoint_host(endpoint: str) -> str | None:
    """The host part of a tcp:// endpoint (brackets removed), or None for ipc:// and inproc://."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return None
    m = _TCP.match(endpoint)
    if not m:
        raise ValueError(
            f"bad endpoint {endpoint!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
        )
    return m.group("host").strip("[]")


def is_loopback_endpoint(endpoint: str) -> bool:
    """True when only processes on this machine can reach ``endpoint``."""
    host = endpoint_host(endpoint)
    if host is None:
        return True
    if host in ("*", "0.0.0.0", "::"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name or an interface name: loopback only if every address it has is loopback
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind_allowed(endpoint: str, secure: bool, insecure: bool = False) -> None:
    """Raise :class:`InsecureBindError` for a non-loopback bind without keys (unless insecure)."""
    if secure or is_loopback_endpoint(endpoint):
        return
    if insecure:
        log.warning("binding %s WITHOUT encryption or authentication (--insecure)", endpoint)
        return
    raise InsecureBindError(
        f"refusing to bind {endpoint} without CURVE keys: anyone on the network could command "
        "the arm. Generate keys with `telesurgery-keygen`, pass the arm's secret key and the "
        "directory of allowed console public keys, or bind to 127.0.0.1, or pass --insecure "
        "if you really mean it."
    )


def generate_keypair(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret (secret, mode 0600) into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(d), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """The z85 public key from a ``.key`` or ``.key_secret`` file."""
    public, _ = _load(path)
    return public


def load_keypair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a ``.key_secret`` file."""
    public, secret = _load(path)
    if not secret:
        raise KeyFileError(f"{path} holds no secret key: pass the NAME.key_secret file")
    return public, secret


def _load(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    p = Path(path)
    if not p.is_file():
        raise KeyFileError(f"key file {p} does not exist (create keys with `telesurgery-keygen`)")
    try:
        return zmq.auth.load_certificate(str(p))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc}") from exc


@dataclass(frozen=True)
class ServerSecurity:
    """The arm's CURVE settings: its secret key file and the directory of allowed console keys."""

    secret_key_file: Path
    allowed_clients_dir: Path

    def __post_init__(self) -> None:
        load_keypair(self.secret_key_file)
        if not Path(self.allowed_clients_dir).is_dir():
            raise KeyFileError(
                f"allowed-clients directory {self.allowed_clients_dir} does not exist: put the "
                "public keys (NAME.key) of the consoles that may connect there"
            )

    def start(self, context: zmq.Context) -> ThreadAuthenticator:
        """Start the ZAP authenticator for ``context`` with the allow-list; caller stops it."""
        auth = ThreadAuthenticator(context, log=logging.getLogger(__name__ + ".zap"))
        auth.start()
        auth.configure_curve(domain="*", location=str(self.allowed_clients_dir))
        n = len(list(Path(self.allowed_clients_dir).glob("*.key")))
        log.info("CURVE on: %d allowed console key(s) in %s", n, self.allowed_clients_dir)
        return auth

    def apply(self, sock: zmq.Socket) -> None:
        public, secret = load_keypair(self.secret_key_file)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True


@dataclass(frozen=True)
class ClientSecurity:
    """A console's CURVE settings: its own secret key file and the arm's public key file."""

    secret_key_file: Path
    server_public_key_file: Path

    def __post_init__(self) -> None:
        load_keypair(self.secret_key_file)
        load_public_key(self.server_public_key_file)

    def apply(self, sock: zmq.Socket) -> None:
        public, secret = load_keypair(self.secret_key_file)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_serverkey = load_public_key(self.server_public_key_file)


def keygen_main(argv: list[str] | None = None) -> int:
    """``telesurgery-keygen NAME [--dir DIR]``: create a CURVE key pair."""
    parser = argparse.ArgumentParser(
        prog="telesurgery-keygen",
        description="Create a CURVE key pair for an arm or a console. Give the arm's NAME.key to "
        "consoles; put each console's NAME.key in the arm's allowed-clients directory; never "
        "share a .key_secret file.",
    )
    parser.add_argument("name", help="key name, e.g. arm or console-alice")
    parser.add_argument("--dir", default="keys", help="output directory (default: ./keys)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.name):
        parser.error("name may contain letters, digits, '_', '.', '-' only")
    public, secret = generate_keypair(args.dir, args.name)
    print(f"public key: {public}\nsecret key: {secret} (keep private)")
    return 0
