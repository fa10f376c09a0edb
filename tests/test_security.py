"""CURVE: allow-listed consoles get in, unknown keys never arrive; the bind-safety rule."""

from __future__ import annotations

import os
import stat
import time

import pytest

from network.link import ArmLink, ConsoleLink, LinkConfig, LinkTimeout, free_tcp_endpoint
from network.security import (
    ClientSecurity,
    InsecureBindError,
    KeyFileError,
    ServerSecurity,
    check_bind_allowed,
    generate_keypair,
    is_loopback_endpoint,
    keygen_main,
    load_public_key,
)


@pytest.fixture
def keys(tmp_path):
    """An arm key pair, an allowed console, and a console the arm does not know."""
    allowed = tmp_path / "allowed"
    _, arm_secret = generate_keypair(tmp_path / "arm", "arm")
    alice_public, alice_secret = generate_keypair(tmp_path / "alice", "alice")
    _, mallory_secret = generate_keypair(tmp_path / "mallory", "mallory")
    allowed.mkdir()
    (allowed / "alice.key").write_bytes(alice_public.read_bytes())
    return {
        "server": ServerSecurity(arm_secret, allowed),
        "alice": ClientSecurity(alice_secret, tmp_path / "arm" / "arm.key"),
        "mallory": ClientSecurity(mallory_secret, tmp_path / "arm" / "arm.key"),
        "alice_public": alice_public,
    }


def _stream(link: ConsoleLink, n: int) -> None:
    for _ in range(n):
        link.send_command((0.0, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0))
        link.service_until(time.monotonic_ns() + 1_000_000)


def test_allowed_console_works_and_unknown_key_never_arrives(keys, arm_thread) -> None:
    cfg = LinkConfig(endpoint=free_tcp_endpoint())
    arm = arm_thread(cfg, security=keys["server"])
    # the unknown key first: its handshake never completes, so the hello never arrives
    mallory = ConsoleLink(cfg, name="mallory", security=keys["mallory"])
    with pytest.raises(LinkTimeout, match="allowed-clients"):
        mallory.connect(timeout_s=1.0)
    # a console with no keys at all fares no better
    plain = ConsoleLink(cfg, name="plain")
    with pytest.raises(LinkTimeout):
        plain.connect(timeout_s=0.5)
    assert arm.link.counters["hello_accepted"] == 0
    assert arm.link.counters["rx_rejected"] == 0  # nothing at all reached the arm's code
    assert arm.link.controller is None
    # the allow-listed console connects, commands and sees state, encrypted
    with ConsoleLink(cfg, name="alice", security=keys["alice"]) as alice:
        _stream(alice, 100)
        alice.service_until(time.monotonic_ns() + 100_000_000)
        assert alice.latest_state is not None
        assert alice.latest_state.state.counters["cmd_received"] >= 100
        ctl = arm.link.controller
        assert ctl is not None and ctl.name == "alice"
        assert ctl.public_key == load_public_key(keys["alice_public"]).decode()
    assert arm.link.counters["hello_accepted"] == 1


def test_loopback_rule() -> None:
    for ep in (
        "tcp://127.0.0.1:5570",
        "tcp://127.3.4.5:5570",
        "tcp://localhost:5570",
        "tcp://[::1]:5570",
        "ipc:///tmp/arm",
        "inproc://arm",
    ):
        assert is_loopback_endpoint(ep), ep
    for ep in ("tcp://0.0.0.0:5570", "tcp://*:5570", "tcp://[::]:5570", "tcp://10.1.2.3:5570"):
        assert not is_loopback_endpoint(ep), ep


def test_non_loopback_bind_without_keys_is_refused(keys) -> None:
    with pytest.raises(InsecureBindError, match="telesurgery-keygen"):
        check_bind_allowed("tcp://0.0.0.0:5570", secure=False)
    check_bind_allowed("tcp://0.0.0.0:5570", secure=True)  # with keys: fine
    check_bind_allowed("tcp://127.0.0.1:5570", secure=False)  # loopback: fine
    # the arm endpoint applies the rule before opening any socket
    arm = ArmLink(LinkConfig(endpoint="tcp://0.0.0.0:5570"))
    with pytest.raises(InsecureBindError):
        arm.bind()
    arm.close()


def test_insecure_flag_allows_it_loudly(caplog) -> None:
    ep = free_tcp_endpoint("0.0.0.0")
    with ArmLink(LinkConfig(endpoint=ep), insecure=True) as arm:
        assert arm.channels.control == ep
    assert any("WITHOUT encryption" in r.getMessage() for r in caplog.records)


def test_keygen_writes_a_private_secret(tmp_path, capsys) -> None:
    assert keygen_main(["console-bob", "--dir", str(tmp_path)]) == 0
    secret = tmp_path / "console-bob.key_secret"
    assert (tmp_path / "console-bob.key").is_file() and secret.is_file()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert "keep private" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        keygen_main(["../evil", "--dir", str(tmp_path)])


def test_missing_key_files_say_what_to_do(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="telesurgery-keygen"):
        ClientSecurity(tmp_path / "nope.key_secret", tmp_path / "arm.key")
    _, secret = generate_keypair(tmp_path, "arm")
    with pytest.raises(KeyFileError, match="allowed-clients"):
        ServerSecurity(secret, tmp_path / "no-such-dir")
    with pytest.raises(KeyFileError, match="secret"):
        ServerSecurity(tmp_path / "arm.key", tmp_path)
