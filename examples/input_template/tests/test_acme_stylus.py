"""The ACME stylus template: the console's conformance kit, packet decoding, UDP end to end.

Run from the repository root (after ``pip install -e examples/input_template``)::

    python -m pytest examples/input_template/tests -q
"""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from master_console.config import input_entry_points, make_device, settings_from_dict
from master_console.device_check import (
    INPUT_CHECKS,
    CheckOptions,
    check_name,
    input_device_factory,
)
from master_console.devices import InputSample

from acme_stylus import AcmeStylus, AcmeStylusConfig, StylusSimulator, to_console_pose
from acme_stylus.packet import (
    BUTTON_CAMERA,
    BUTTON_CLUTCH,
    BUTTON_PRESENT,
    PACKET_SIZE,
    PacketError,
    StylusPacket,
    decode_packet,
    encode_packet,
    seq_is_newer,
)

HERE = Path(__file__).resolve().parent.parent
CENTER = (0.0, 150.0, -80.0)


def _packet(seq: int = 1, pos=(0.0, 150.0, -80.0), quat=(1.0, 0.0, 0.0, 0.0), **kw) -> bytes:
    fields = dict(
        seq=seq,
        device_time_us=1000 * seq,
        position_mm=pos,
        quaternion_wxyz=quat,
        buttons=BUTTON_PRESENT | BUTTON_CLUTCH,
        grip=0.25,
    )
    fields.update(kw)
    return encode_packet(StylusPacket(**fields))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(stylus: AcmeStylus, pred, timeout_s: float = 2.0) -> InputSample:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        s = stylus.latest()
        if s is not None and pred(s):
            return s
        time.sleep(0.002)
    raise AssertionError(f"no matching sample within {timeout_s} s; latest {stylus.latest()}")


@pytest.fixture
def udp_stylus() -> Iterator[tuple[AcmeStylus, socket.socket]]:
    """A stylus on the udp backend (a free loopback port) and a socket to send it packets."""
    stylus = AcmeStylus(backend="udp", host="127.0.0.1", port=_free_udp_port())
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with stylus:
        yield stylus, tx
    tx.close()


# ---------------------------------------------------------------------------------------------
# The console's conformance kit, one test per check, over the simulated backend


@pytest.mark.parametrize("check", INPUT_CHECKS, ids=check_name)
def test_conformance_simulated(check) -> None:
    check(input_device_factory(AcmeStylus, backend="simulated"), CheckOptions(seconds=0.5))


def test_the_package_registers_acme_stylus() -> None:
    eps = input_entry_points()
    assert "acme-stylus" in eps, "pip install -e examples/input_template"
    assert eps["acme-stylus"].load() is AcmeStylus


def test_console_options_reach_the_constructor(tmp_path: Path) -> None:
    doc = {
        "input": {"device": "acme-stylus"},
        "devices": {"acme-stylus": {"config_path": str(HERE / "acme_stylus.toml"), "port": 5711}},
    }
    dev = make_device(settings_from_dict(doc))
    assert isinstance(dev, AcmeStylus)
    assert dev.config.backend == "udp" and dev.config.port == 5711  # the option wins the file


# ---------------------------------------------------------------------------------------------
# Packets


def test_a_packet_round_trips() -> None:
    p = StylusPacket(7, 123456, (1.5, -2.0, 3.25), (1.0, 0.0, 0.0, 0.0), 0b101, 0.5)
    data = encode_packet(p)
    assert len(data) == PACKET_SIZE == 56
    assert decode_packet(data) == p


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "size"),
        (_packet()[:-1], "size"),
        (_packet() + b"\0", "size"),
        (b"ACMX" + _packet()[4:], "magic"),
        (_packet()[:4] + b"\x02" + _packet()[5:], "version"),
        (_packet(pos=(math.nan, 0.0, 0.0)), "non_finite"),
        (_packet(quat=(math.inf, 0.0, 0.0, 0.0)), "non_finite"),
        (_packet(quat=(0.5, 0.0, 0.0, 0.0)), "quaternion"),
        (_packet(grip=1.5), "grip"),
        (_packet(grip=-0.1), "grip"),
    ],
)
def test_bad_packets_raise_packet_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(PacketError) as err:
        decode_packet(data)
    assert err.value.reason == reason


def test_seq_comparison_survives_the_wrap() -> None:
    assert seq_is_newer(5, 4) and not seq_is_newer(4, 5) and not seq_is_newer(4, 4)
    assert seq_is_newer(0, 0xFFFFFFFF) and seq_is_newer(3, 0xFFFFFFF0)


def test_the_frame_conversion_maps_stylus_axes_to_console_axes() -> None:
    def moved(d_mm):
        p = StylusPacket(1, 0, tuple(np.add(CENTER, d_mm)), (1.0, 0.0, 0.0, 0.0), 0, 0.0)
        return to_console_pose(p, CENTER)

    assert np.allclose(moved((10, 0, 0))[:3], [0.010, 0.0, 0.0])  # right stays right
    assert np.allclose(moved((0, 10, 0))[:3], [0.0, 0.0, 0.010])  # stylus up -> console z
    assert np.allclose(moved((0, 0, 10))[:3], [0.0, -0.010, 0.0])  # toward you -> -y
    q = moved((0, 0, 0))[3:]  # the stylus's identity, seen from the console frame
    assert np.allclose(q, [math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)])


def test_the_config_loads_from_toml_and_names_bad_keys(tmp_path: Path) -> None:
    cfg = AcmeStylusConfig.from_toml(HERE / "acme_stylus.toml")
    assert cfg.backend == "udp" and cfg.port == 5700 and cfg.center_mm == CENTER
    bad = tmp_path / "bad.toml"
    bad.write_text('backend = "udp"\nprot = 5700\n')
    with pytest.raises(ValueError, match=r"unknown AcmeStylusConfig key.*prot.*valid keys"):
        AcmeStylusConfig.from_toml(bad)
    with pytest.raises(ValueError, match="backend must be one of simulated, udp"):
        AcmeStylusConfig(backend="usb")
    box = AcmeStylusConfig().position_range_m()
    assert np.allclose(box[1], [0.160, 0.080, 0.120])  # half extents x, z, y (mm) in m


# ---------------------------------------------------------------------------------------------
# The device over real UDP


def test_udp_packets_become_samples_in_metres(udp_stylus) -> None:
    stylus, tx = udp_stylus
    assert stylus.address is not None
    tx.sendto(_packet(seq=1, pos=(10.0, 170.0, -50.0), grip=0.25), stylus.address)
    s = _wait(stylus, lambda s: True)
    assert np.allclose(s.pose[:3], [0.010, -0.030, 0.020], atol=1e-6)  # mm -> m, our frame
    assert np.isclose(np.linalg.norm(s.pose[3:]), 1.0)
    assert s.buttons.clutch and s.buttons.operator_present and not s.buttons.camera
    assert s.jaw == pytest.approx(0.75)  # (1 - grip) * jaw_open_rad
    assert abs(time.monotonic_ns() - s.t_ns) < 1e9  # stamped on receipt, our clock
    assert stylus.last_device_time_us == 1000
    tx.sendto(_packet(seq=2, buttons=BUTTON_CAMERA | BUTTON_PRESENT), stylus.address)
    s2 = _wait(stylus, lambda x: x.seq > s.seq)
    assert s2.buttons.camera and not s2.buttons.clutch


def test_bad_datagrams_are_counted_and_never_raise(udp_stylus) -> None:
    stylus, tx = udp_stylus
    for data in (b"hello", b"ACMX" + _packet()[4:], _packet(grip=2.0), b"\xff" * 56):
        tx.sendto(data, stylus.address)
    tx.sendto(_packet(seq=10), stylus.address)
    tx.sendto(_packet(seq=9), stylus.address)  # reordered on the network: older, dropped
    _wait(stylus, lambda s: True)
    time.sleep(0.05)
    st = stylus.stats
    assert st.accepted == 1 and st.received == 6, st
    assert st.reasons == {"size": 1, "magic": 2, "grip": 1, "stale": 1}, st.reasons
    assert stylus.errors == 0  # the reader thread never raised
    tx.sendto(_packet(seq=11, pos=(0.0, 150.0, -70.0)), stylus.address)
    s = _wait(stylus, lambda s: s.pose[1] < -0.005)
    assert np.allclose(s.pose[:3], [0.0, -0.010, 0.0], atol=1e-6)


def test_a_silent_stylus_lets_go_of_the_arm(udp_stylus) -> None:
    stylus, tx = udp_stylus
    tx.sendto(_packet(seq=1), stylus.address)
    first = _wait(stylus, lambda s: True)
    assert first.buttons.clutch
    lost = _wait(stylus, lambda s: s.seq > first.seq, timeout_s=1.0)  # after timeout_ms
    assert not lost.buttons.clutch and not lost.buttons.operator_present
    assert np.array_equal(lost.pose, first.pose) and lost.jaw == first.jaw
    assert stylus.stats.timeouts == 1
    tx.sendto(_packet(seq=0), stylus.address)  # a restarted stylus counts from 0 again
    back = _wait(stylus, lambda s: s.seq > lost.seq)
    assert back.buttons.clutch


def test_the_simulator_sends_the_vendor_format() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    with StylusSimulator(rx.getsockname(), rate_hz=200.0):
        packets = [decode_packet(rx.recv(2048)) for _ in range(5)]
    rx.close()
    assert [p.seq for p in packets] == sorted(p.seq for p in packets)
    for p in packets:
        assert p.buttons & BUTTON_PRESENT
        assert np.linalg.norm(np.subtract(p.position_mm, CENTER)) < 100.0  # mm, near centre
    assert struct.calcsize("<4sBBHIQ3f4fHHf") == PACKET_SIZE
