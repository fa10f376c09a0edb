"""Joystick (SDL virtual joystick through pygame) and SpaceMouse (fake pyspacemouse) devices."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import math
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from master_console import joystick as js
from master_console.devices import InputSample
from master_console.joystick import (
    JoystickConfig,
    JoystickDevice,
    SpaceMouseConfig,
    SpaceMouseDevice,
)
from master_console.virtual_joystick import VirtualJoystick

# the virtual gamepad has SDL controller order: axes LX LY RX RY LT RT; LB = 9, RB = 10
LB, RB = 9, 10


def wait_for(
    dev: JoystickDevice | SpaceMouseDevice,
    pred: Callable[[InputSample], bool],
    timeout_s: float = 5.0,
) -> InputSample:
    """The first sample (newer than now) that satisfies ``pred``; generous for a loaded machine."""
    t0 = time.monotonic_ns()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = dev.latest()
        if s is not None and s.t_ns > t0 and pred(s):
            return s
        time.sleep(0.002)
    raise AssertionError(f"no sample satisfied the condition in {timeout_s} s: {dev.latest()}")


def settle(dev: JoystickDevice) -> InputSample:
    """A sample taken after everything set so far was seen (two reads later)."""
    s = wait_for(dev, lambda s: True)
    return wait_for(dev, lambda x: x.seq >= s.seq + 2)


@pytest.fixture
def pads() -> Iterator[Callable[..., VirtualJoystick]]:
    """Factory for uniquely named virtual gamepads, all unplugged at teardown."""
    made: list[VirtualJoystick] = []

    def make(**kw: object) -> VirtualJoystick:
        kw.setdefault("name", f"Test Pad {uuid.uuid4().hex[:8]}")
        vj = VirtualJoystick(**kw)  # type: ignore[arg-type]
        made.append(vj)
        return vj

    yield make
    for vj in made:
        vj.close()


@pytest.fixture
def pad(pads: Callable[..., VirtualJoystick]) -> VirtualJoystick:
    return pads()


def device(vj: VirtualJoystick, **cfg: object) -> JoystickDevice:
    cfg.setdefault("name_contains", vj.name)
    cfg.setdefault("rate_hz", 500.0)
    return JoystickDevice(JoystickConfig(**cfg))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The virtual joystick itself


def test_virtual_joystick_is_seen_by_pygame_at_once(pad: VirtualJoystick) -> None:
    import pygame.joystick

    names = [n for _, n in js.list_joysticks()]
    assert pad.name in names
    j = pygame.joystick.Joystick(pad.device_index)
    assert j.get_name() == pad.name and j.get_numaxes() == 6 and j.get_numbuttons() == 16
    pad.set_axis(0, 1.0)
    pad.set_axis(1, -1.0)
    pad.set_button(3, True)
    pad.update()
    assert j.get_axis(0) == pytest.approx(1.0, abs=1e-4)
    assert j.get_axis(1) == -1.0
    assert j.get_button(3) == 1
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        pad.set_axis(0, 1.5)
    with pytest.raises(ValueError, match="button must be"):
        pad.set_button(16, True)
    pad.close()
    assert pad.name not in [n for _, n in js.list_joysticks()]
    with pytest.raises(RuntimeError, match="closed"):
        pad.set_axis(0, 0.0)
    pad.close()  # idempotent


def test_sdl_library_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(js, "_sdl", None)
    monkeypatch.setattr(js, "_sdl_candidates", lambda: [])
    with pytest.raises(RuntimeError, match="cannot find the SDL2 library that pygame uses"):
        VirtualJoystick()


# ---------------------------------------------------------------------------------------------
# Motion


def test_full_deflection_moves_along_plus_x_at_max_speed(pad: VirtualJoystick) -> None:
    dev = device(pad, max_speed_m_s=0.05, dead_zone=0.1)
    with dev:
        rest = settle(dev)
        assert np.all(rest.twist == 0) and np.allclose(rest.pose, [0, 0, 0, 0, 0, 0, 1])
        pad.set_axis(0, 1.0)
        s0 = wait_for(dev, lambda s: s.twist[0] > 0)
        w0 = time.monotonic()
        time.sleep(0.3)
        s1 = dev.latest()
        w1 = time.monotonic()
    assert s0 is not None and s1 is not None
    np.testing.assert_allclose(s0.twist, [0.05, 0, 0, 0, 0, 0], atol=1e-9)
    dt = (s1.t_ns - s0.t_ns) / 1e9
    # integrated by sample time: exactly v·dt between two samples holding the same twist
    assert s1.pose[0] - s0.pose[0] == pytest.approx(0.05 * dt, rel=1e-6)
    np.testing.assert_allclose(s1.pose[1:], [0, 0, 0, 0, 0, 1], atol=1e-12)
    # and against the wall clock, generously (the reader thread may lag on a loaded machine)
    assert 0.05 * (w1 - w0 - 0.15) < s1.pose[0] - s0.pose[0] < 0.05 * (w1 - w0 + 0.05)


def test_invert_flips_the_direction(pad: VirtualJoystick) -> None:
    dev = device(pad, max_speed_m_s=0.05, invert=(True, True, True, False, False, False))
    with dev:
        settle(dev)
        pad.set_axis(0, 1.0)
        s0 = wait_for(dev, lambda s: s.twist[0] != 0)
        s1 = wait_for(dev, lambda s: s.t_ns > s0.t_ns + 50_000_000)
    assert s0.twist[0] == pytest.approx(-0.05)
    assert s1.pose[0] < s0.pose[0]


def test_default_mapping_left_stick_xy_right_stick_z(pad: VirtualJoystick) -> None:
    dev = device(pad, max_speed_m_s=0.04)
    with dev:
        settle(dev)
        pad.set_axis(1, -1.0)  # left stick pushed up (SDL: negative) -> +y
        s = wait_for(dev, lambda s: s.twist[1] != 0)
        np.testing.assert_allclose(s.twist, [0, 0.04, 0, 0, 0, 0], atol=1e-9)
        pad.set_axis(1, 0.0)
        pad.set_axis(3, -1.0)  # right stick pushed up -> +z
        s = wait_for(dev, lambda s: s.twist[2] != 0 and s.twist[1] == 0)
        np.testing.assert_allclose(s.twist, [0, 0, 0.04, 0, 0, 0], atol=1e-9)
        pad.set_axis(2, 1.0)  # right stick x: unmapped by default
        s = settle(dev)
        np.testing.assert_allclose(s.twist, [0, 0, 0.04, 0, 0, 0], atol=1e-9)


def test_dead_zone_zeroes_small_deflections_and_rescales_the_rest(pad: VirtualJoystick) -> None:
    dev = device(pad, max_speed_m_s=0.05, dead_zone=0.1)
    with dev:
        pad.set_axis(0, 0.08)
        a = settle(dev)
        time.sleep(0.05)
        b = dev.latest()
        assert b is not None and np.all(a.twist == 0) and b.pose[0] == a.pose[0] == 0.0
        pad.set_axis(0, -0.55)
        s = wait_for(dev, lambda s: s.twist[0] != 0)
    # continuous past the dead zone: (0.55 - 0.1) / 0.9 = 0.5 of full speed
    assert s.twist[0] == pytest.approx(-0.025, rel=1e-3)


def test_rotation_axes_integrate_into_the_orientation(pad: VirtualJoystick) -> None:
    dev = device(pad, axes=(0, 1, -1, -1, -1, 2), invert=(False,) * 6, max_rate_rad_s=1.0)
    with dev:
        settle(dev)
        pad.set_axis(2, 1.0)
        s0 = wait_for(dev, lambda s: s.twist[5] != 0)
        s1 = wait_for(dev, lambda s: s.t_ns > s0.t_ns + 100_000_000)
    assert s0.twist[5] == pytest.approx(1.0)
    yaw = lambda p: 2 * math.atan2(p[5], p[6])  # noqa: E731 - rotation about z only
    assert yaw(s1.pose) - yaw(s0.pose) == pytest.approx((s1.t_ns - s0.t_ns) / 1e9, rel=1e-6)
    assert np.linalg.norm(s1.pose[3:]) == pytest.approx(1.0)


def test_reset_pose(pad: VirtualJoystick) -> None:
    dev = device(pad)
    with dev:
        settle(dev)
        dev.reset_pose(np.array([0.1, 0.2, 0.3, 0, 0, 0, 1.0]))
        s = settle(dev)
        np.testing.assert_allclose(s.pose, [0.1, 0.2, 0.3, 0, 0, 0, 1])
        with pytest.raises(ValueError, match="7 finite"):
            dev.reset_pose(np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Buttons


def test_hold_clutch_follows_the_button(pad: VirtualJoystick) -> None:
    dev = device(pad)
    with dev:
        s = settle(dev)
        assert s.buttons.clutch is False and s.buttons.operator_present is True
        pad.set_button(LB, True)
        assert wait_for(dev, lambda s: s.buttons.clutch).buttons.operator_present
        pad.set_button(LB, False)
        wait_for(dev, lambda s: not s.buttons.clutch)


def test_reconnecting_the_device_object(pad: VirtualJoystick) -> None:
    dev = device(pad)
    with dev:
        settle(dev)
        pad.set_button(LB, True)
        wait_for(dev, lambda s: s.buttons.clutch)
    with dev:  # connect again with the clutch held: it must be released first
        assert settle(dev).buttons.clutch is False
        pad.set_button(LB, False)
        settle(dev)
        pad.set_button(LB, True)
        wait_for(dev, lambda s: s.buttons.clutch)
    assert dev.errors == 0


def test_clutch_held_while_connecting_needs_a_release_first(pad: VirtualJoystick) -> None:
    pad.set_button(LB, True)
    dev = device(pad)
    with dev:
        assert settle(dev).buttons.clutch is False
        time.sleep(0.05)
        assert dev.latest().buttons.clutch is False  # type: ignore[union-attr]
        pad.set_button(LB, False)
        settle(dev)
        pad.set_button(LB, True)
        wait_for(dev, lambda s: s.buttons.clutch)


def test_toggle_clutch_flips_on_each_press(pad: VirtualJoystick) -> None:
    dev = device(pad, clutch_mode="toggle", clutch_button=0, operator_present_button=1)
    with dev:
        pad.set_button(1, True)  # present (hold)
        assert settle(dev).buttons.clutch is False
        for expected in (True, False, True):
            pad.set_button(0, True)
            wait_for(dev, lambda s, e=expected: s.buttons.clutch is e)
            pad.set_button(0, False)
            assert settle(dev).buttons.clutch is expected  # release does not change it
        # presence dropping releases a toggled clutch, and it stays released
        pad.set_button(1, False)
        wait_for(dev, lambda s: not s.buttons.operator_present and not s.buttons.clutch)
        pad.set_button(1, True)
        assert wait_for(dev, lambda s: s.buttons.operator_present).buttons.clutch is False


def test_operator_present_button_hold_and_toggle(pads: Callable[..., VirtualJoystick]) -> None:
    a, b = pads(), pads()
    hold = device(a, operator_present_button=2)
    toggle = device(b, operator_present_button=2, operator_present_mode="toggle")
    with hold, toggle:
        assert settle(hold).buttons.operator_present is False
        assert settle(toggle).buttons.operator_present is False
        a.set_button(2, True)
        b.set_button(2, True)
        wait_for(hold, lambda s: s.buttons.operator_present)
        wait_for(toggle, lambda s: s.buttons.operator_present)
        a.set_button(2, False)
        b.set_button(2, False)
        wait_for(hold, lambda s: not s.buttons.operator_present)
        assert settle(toggle).buttons.operator_present is True
        b.set_button(2, True)
        wait_for(toggle, lambda s: not s.buttons.operator_present)


def test_camera_button(pad: VirtualJoystick) -> None:
    dev = device(pad)
    with dev:
        assert settle(dev).buttons.camera is False
        pad.set_button(RB, True)
        wait_for(dev, lambda s: s.buttons.camera)


def test_jaw_buttons_move_it_at_the_rate_within_limits(pad: VirtualJoystick) -> None:
    dev = device(
        pad, jaw_axis=-1, jaw_open_button=1, jaw_close_button=2, jaw_rate_rad_s=2.0, jaw_max_rad=0.5
    )
    with dev:
        assert settle(dev).jaw == 0.0
        pad.set_button(1, True)
        s0 = wait_for(dev, lambda s: s.jaw > 0.0)
        s1 = wait_for(dev, lambda s: s.t_ns > s0.t_ns + 50_000_000)
        if s1.jaw < 0.5:  # not yet at the limit: exactly the rate by sample time
            assert s1.jaw - s0.jaw == pytest.approx(2.0 * (s1.t_ns - s0.t_ns) / 1e9, rel=1e-6)
        wait_for(dev, lambda s: s.jaw == 0.5)
        time.sleep(0.05)
        assert dev.latest().jaw == 0.5  # type: ignore[union-attr]
        pad.set_button(1, False)
        pad.set_button(2, True)
        wait_for(dev, lambda s: s.jaw == 0.0)
        time.sleep(0.05)
        assert dev.latest().jaw == 0.0  # type: ignore[union-attr]


def test_jaw_axis_maps_a_trigger(pad: VirtualJoystick) -> None:
    dev = device(pad, jaw_max_rad=0.8)  # default: right trigger (axis 5), squeeze closes
    with dev:
        assert settle(dev).jaw == pytest.approx(0.8)  # a released trigger rests at -1: open
        pad.set_axis(5, 1.0)
        wait_for(dev, lambda s: s.jaw == pytest.approx(0.0, abs=1e-9))
        pad.set_axis(5, 0.0)
        wait_for(dev, lambda s: s.jaw == pytest.approx(0.4, abs=1e-4))
    dev = device(pad, jaw_max_rad=0.8, jaw_axis_invert=False)
    with dev:
        assert settle(dev).jaw == pytest.approx(0.4, abs=1e-4)
        pad.set_axis(5, 1.0)
        wait_for(dev, lambda s: s.jaw == pytest.approx(0.8))


# ---------------------------------------------------------------------------------------------
# Choosing the device, errors


def test_device_is_chosen_by_name(pads: Callable[..., VirtualJoystick]) -> None:
    tag = uuid.uuid4().hex[:6]
    alpha = pads(name=f"Alpha Stick {tag}")
    beta = pads(name=f"Beta Stick {tag}")
    dev = JoystickDevice(JoystickConfig(name_contains=f"beta STICK {tag}", rate_hz=500.0))
    with dev:
        assert dev.device_name == beta.name
        alpha.set_axis(0, 1.0)
        assert np.all(settle(dev).twist == 0)
        beta.set_axis(0, -1.0)
        assert wait_for(dev, lambda s: s.twist[0] != 0).twist[0] < 0


def test_device_by_index(pad: VirtualJoystick) -> None:
    dev = JoystickDevice(JoystickConfig(index=pad.device_index, rate_hz=500.0))
    with dev:
        assert dev.device_name == pad.name


def test_no_match_lists_the_connected_joysticks(pad: VirtualJoystick) -> None:
    dev = JoystickDevice(JoystickConfig(name_contains="no-such-xbox"))
    with pytest.raises(RuntimeError) as e:
        dev.connect()
    msg = str(e.value)
    assert "no joystick matching 'no-such-xbox'" in msg
    assert f"[{pad.device_index}] {pad.name!r}" in msg
    assert not dev.is_connected
    with pytest.raises(RuntimeError, match=r"no joystick at index 99; connected: .*Test Pad"):
        JoystickDevice(JoystickConfig(index=99)).connect()


def test_no_joystick_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(js, "list_joysticks", lambda: [])
    with pytest.raises(RuntimeError, match=r"no joystick connected: plug one in.*--input keyboard"):
        JoystickDevice().connect()


def test_a_config_the_device_cannot_satisfy(pads: Callable[..., VirtualJoystick]) -> None:
    small = pads(naxes=2, nbuttons=4, joystick_type=0)
    with pytest.raises(RuntimeError) as e:
        device(small).connect()  # defaults: axis 3, jaw axis 5, clutch 9, camera 10
    msg = str(e.value)
    assert "2 axes (0..1) and 4 buttons (0..3)" in msg
    for part in ("axes[2] = 3", "jaw_axis = 5", "clutch_button = 9", "camera_button = 10"):
        assert part in msg


def test_probe_tool_lists_and_watches(
    pad: VirtualJoystick, capsys: pytest.CaptureFixture[str]
) -> None:
    assert js.main([]) == 0
    assert f"[{pad.device_index}] {pad.name!r}: 6 axes, 16 buttons" in capsys.readouterr().out
    pad.set_axis(2, -0.5)
    pad.set_button(4, True)
    assert js.main(["--watch", str(pad.device_index), "--seconds", "0.15"]) == 0
    out = capsys.readouterr().out
    assert "2:-0.50" in out and "buttons [4]" in out


def test_config_from_dict_like_a_toml_table() -> None:
    c = JoystickConfig.from_dict(
        {
            "name_contains": "xbox",
            "axes": [0, 1, 4, -1, -1, -1],
            "invert": [False, True, True, False, False, False],
            "dead_zone": 0.2,
            "max_speed_m_s": 0.02,
            "clutch_button": 5,
            "clutch_mode": "toggle",
            "operator_present_button": 4,
            "camera_button": -1,
            "jaw_axis": -1,
            "jaw_open_button": 1,
            "jaw_close_button": 0,
        }
    )
    assert c.axes == (0, 1, 4, -1, -1, -1) and c.invert[1] is True
    assert c.camera_button is None and c.jaw_axis is None and c.jaw_open_button == 1
    assert c.clutch_mode == "toggle" and c.operator_present_button == 4
    assert JoystickConfig.from_dict({}) == JoystickConfig()


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"clutch_buton": 1}, r"unknown JoystickConfig key 'clutch_buton'; valid keys: .*clutch_b"),
        ({"axes": [0, 1, 2]}, r"axes must be 6 SDL axis indices"),
        ({"axes": [0, 0, -1, -1, -1, -1]}, r"axes uses an SDL axis twice"),
        ({"axes": [0, 1, -2, -1, -1, -1]}, r"axes\[2\] must be an integer >= -1"),
        ({"invert": [True] * 5}, r"invert must be 6 booleans"),
        ({"invert": [1, 0, 0, 0, 0, 0]}, r"invert\[0\] must be true or false"),
        ({"dead_zone": 1.0}, r"dead_zone must be a finite number in \[0, 1\)"),
        ({"max_speed_m_s": 0}, r"max_speed_m_s must be a finite number in \(0, inf\)"),
        ({"max_speed_m_s": "fast"}, r"max_speed_m_s must be a finite number"),
        ({"rate_hz": math.nan}, r"rate_hz must be a finite number"),
        ({"index": True}, r"index must be an integer >= 0, got True"),
        ({"clutch_button": -1}, r"clutch_button must be an integer >= 0"),
        ({"clutch_mode": "press"}, r"clutch_mode must be one of \['hold', 'toggle'\]"),
        ({"camera_button": 9}, r"clutch_button and camera_button are both button 9"),
        ({"jaw_open_button": 1}, r"jaw_axis = -1 to use jaw_open_button"),
        ({"jaw_axis": 0}, r"jaw_axis 0 is also a motion axis"),
        ({"jaw_initial_rad": 2.0}, r"jaw_initial_rad \(2.0\) must be <= jaw_max_rad"),
        ({"name_contains": ""}, r"name_contains must be a non-empty string"),
    ],
)
def test_bad_config_says_what_is_wrong(d: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JoystickConfig.from_dict(d)


# ---------------------------------------------------------------------------------------------
# Unplugging


def test_unplug_stops_motion_and_replug_needs_a_clutch_release(
    pads: Callable[..., VirtualJoystick], caplog: pytest.LogCaptureFixture
) -> None:
    pad = pads()
    dev = device(pad)
    dev.RECONNECT_PERIOD_S = 0.05
    with dev:
        settle(dev)
        pad.set_button(LB, True)
        pad.set_axis(0, 1.0)
        wait_for(dev, lambda s: s.buttons.clutch and s.twist[0] > 0)
        pad.close()  # unplugged with the stick deflected and the clutch held
        gone = wait_for(dev, lambda s: not s.buttons.operator_present)
        assert gone.buttons.clutch is False and np.all(gone.twist == 0)
        assert dev.unplugged
        time.sleep(0.1)
        later = dev.latest()
        assert later is not None and later.seq > gone.seq  # the thread goes on
        assert later.pose[0] == gone.pose[0]  # and nothing moves
        assert dev._thread is not None and dev._thread.is_alive() and dev.errors == 0
        assert sum("unplugged" in r.getMessage() for r in caplog.records) == 1  # logged once
        # plugged back in with the clutch still held: present again, but no clutch until re-press
        again = pads(name=pad.name)
        again.set_button(LB, True)
        back = wait_for(dev, lambda s: s.buttons.operator_present)
        assert back.buttons.clutch is False and not dev.unplugged
        assert back.pose[0] == pytest.approx(gone.pose[0])  # no jump in the integrated pose
        again.set_button(LB, False)
        settle(dev)
        again.set_button(LB, True)
        wait_for(dev, lambda s: s.buttons.clutch)
    assert dev.errors == 0


def test_a_failing_read_reports_stopped_and_the_thread_goes_on(pad: VirtualJoystick) -> None:
    dev = device(pad)
    with dev:
        pad.set_button(LB, False)
        settle(dev)
        pad.set_button(LB, True)
        pad.set_axis(0, 1.0)
        wait_for(dev, lambda s: s.buttons.clutch and s.twist[0] > 0)
        dev._joy.quit()  # as if pygame.quit() ran elsewhere: every read now raises
        s = wait_for(dev, lambda s: not s.buttons.operator_present)
        assert not s.buttons.clutch and np.all(s.twist == 0)
        time.sleep(0.05)
        assert dev.errors > 1 and dev._thread is not None and dev._thread.is_alive()


# ---------------------------------------------------------------------------------------------
# SpaceMouse


@dataclass
class FakeSpaceMouseState:
    """pyspacemouse's ``SpaceMouseState`` contract: floats in [-1, 1], t in s, buttons 0/1."""

    t: float = -1.0
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    buttons: list[int] = field(default_factory=lambda: [0, 0])


def test_fake_state_matches_pyspacemouse() -> None:
    psm = pytest.importorskip("pyspacemouse")
    real, fake = psm.SpaceMouseState(), FakeSpaceMouseState()
    for name in ("t", "x", "y", "z", "roll", "pitch", "yaw"):
        assert type(getattr(real, name)) is type(getattr(fake, name)) is float
    assert isinstance(real.buttons, list) and isinstance(fake.buttons, list)


def test_spacemouse_axes_map_to_the_twist() -> None:
    cfg = SpaceMouseConfig(max_speed_m_s=0.04, max_rate_rad_s=0.5, dead_zone=0.1)
    dev = SpaceMouseDevice(cfg)
    s = dev.process_state(FakeSpaceMouseState(x=1.0), t_ns=0)
    np.testing.assert_allclose(s.twist, [0.04, 0, 0, 0, 0, 0])
    s = dev.process_state(FakeSpaceMouseState(z=-0.55), t_ns=1_000_000_000)
    np.testing.assert_allclose(s.pose[:3], [0.04, 0, 0])  # x at 0.04 m/s for 1 s
    np.testing.assert_allclose(s.twist, [0, 0, -0.02, 0, 0, 0], rtol=1e-9)
    s = dev.process_state(FakeSpaceMouseState(yaw=1.0, roll=0.05), t_ns=2_000_000_000)
    np.testing.assert_allclose(s.pose[:3], [0.04, 0, -0.02])
    np.testing.assert_allclose(s.twist, [0, 0, 0, 0, 0, 0.5])  # roll inside the dead zone
    s = dev.process_state(FakeSpaceMouseState(), t_ns=3_000_000_000)
    np.testing.assert_allclose(s.pose[3:], [0, 0, math.sin(0.25), math.cos(0.25)])
    assert np.all(s.twist == 0)


def test_spacemouse_axes_and_invert_are_configurable() -> None:
    cfg = SpaceMouseConfig.from_dict(
        {
            "axes": ["y", "x", "none", "roll", "pitch", "yaw"],
            "invert": [True, False, False, False, True, False],
            "dead_zone": 0.0,
            "max_speed_m_s": 0.1,
            "max_rate_rad_s": 1.0,
        }
    )
    dev = SpaceMouseDevice(cfg)
    s = dev.process_state(FakeSpaceMouseState(x=0.5, y=0.25, z=1.0, pitch=0.5), t_ns=0)
    np.testing.assert_allclose(s.twist, [-0.025, 0.05, 0, 0, -0.5, 0])


def test_spacemouse_buttons_clutch_hold_and_presence_toggle() -> None:
    dev = SpaceMouseDevice()  # left = clutch (hold), right toggles presence
    t = iter(range(0, 10**10, 10**6))
    st = lambda left, right: FakeSpaceMouseState(buttons=[left, right])  # noqa: E731
    step = lambda left, right: dev.process_state(st(left, right), next(t)).buttons  # noqa: E731
    b = step(1, 0)
    assert b.operator_present is False and b.clutch is False  # held at start: not yet
    assert step(0, 0).clutch is False
    assert step(1, 0).clutch is True
    assert step(0, 1).operator_present is True
    assert step(0, 1).operator_present is True  # held: no second toggle
    b = step(1, 0)
    assert b.operator_present and b.clutch
    assert step(1, 1).operator_present is False
    b = SpaceMouseDevice().process_state(FakeSpaceMouseState(buttons=[]), 0).buttons
    assert b.clutch is False and b.operator_present is False  # a device without buttons


def test_spacemouse_real_state_object() -> None:
    psm = pytest.importorskip("pyspacemouse")
    state = psm.SpaceMouseState(t=1.0, x=0.5, yaw=-1.0, buttons=psm.ButtonState([1, 0]))
    s = SpaceMouseDevice(SpaceMouseConfig(dead_zone=0.0)).process_state(state, 0)
    np.testing.assert_allclose(s.twist, [0.025, 0, 0, 0, 0, -1.0])


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"axes": ["x", "y", "z", "roll", "pitch", "spin"]}, r"axes\[5\] must be one of"),
        ({"axes": ["x", "x", "z", "roll", "pitch", "yaw"]}, r"uses a SpaceMouse axis twice"),
        ({"axis_convention": "nasa"}, r"axis_convention must be one of"),
        ({"clutch_button": 1}, r"clutch_button and operator_present_button are both button 1"),
        ({"jaw_axis": 1}, r"unknown SpaceMouseConfig key 'jaw_axis'; valid keys: "),
    ],
)
def test_bad_spacemouse_config(d: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpaceMouseConfig.from_dict(d)


def test_spacemouse_without_pyspacemouse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspacemouse", None)
    with pytest.raises(RuntimeError) as e:
        SpaceMouseDevice().connect()
    assert "pip install 'telesurgery[spacemouse]'" in str(e.value)
    assert "libhidapi-hidraw0" in str(e.value)


def _fake_libs(monkeypatch: pytest.MonkeyPatch, open_fn: Callable[..., object]) -> None:
    psm = types.ModuleType("pyspacemouse")
    psm.open = open_fn  # type: ignore[attr-defined]
    easyhid = types.ModuleType("easyhid")
    easyhid.easyhid = types.SimpleNamespace(  # type: ignore[attr-defined]
        hidapi=types.SimpleNamespace(hid_enumerate=lambda *a: None)
    )
    monkeypatch.setitem(sys.modules, "pyspacemouse", psm)
    monkeypatch.setitem(sys.modules, "easyhid", easyhid)


def test_spacemouse_without_hidapi(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_libs(monkeypatch, lambda **kw: None)
    sys.modules["easyhid"].easyhid = types.SimpleNamespace(hidapi=object())  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match=r"hidapi C library.*libhidapi-hidraw0"):
        SpaceMouseDevice().connect()


def test_spacemouse_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_device(**kw: object) -> object:
        raise RuntimeError("No connected or supported devices found.")

    _fake_libs(monkeypatch, no_device)
    with pytest.raises(RuntimeError, match=r"no SpaceMouse found .*plug one in"):
        SpaceMouseDevice().connect()


class FakeHidSpaceMouse:
    """pyspacemouse 2.x's device: ``read()`` returns (and mutates) one state; ``close()``."""

    def __init__(self) -> None:
        self.state = FakeSpaceMouseState(t=0.0)
        self.pending: list[dict] = []
        self.unplugged = False
        self.lock = threading.Lock()

    def push(self, **report: object) -> None:
        with self.lock:
            self.pending.append(report)

    def read(self) -> FakeSpaceMouseState:
        with self.lock:
            if self.unplugged:
                raise OSError("Failed to read from HID device")
            if self.pending:  # one HID report per read, like the real one
                for k, v in self.pending.pop(0).items():
                    setattr(self.state, k, v)
                self.state.t = time.perf_counter()
            return self.state

    def close(self) -> None:
        pass


def test_spacemouse_threaded_with_a_fake_library(monkeypatch: pytest.MonkeyPatch) -> None:
    hid = FakeHidSpaceMouse()
    opened: list[dict] = []

    def open_fn(**kw: object) -> FakeHidSpaceMouse:
        opened.append(kw)
        if hid.unplugged:
            raise RuntimeError("No connected or supported devices found.")
        return hid

    _fake_libs(monkeypatch, open_fn)
    dev = SpaceMouseDevice(SpaceMouseConfig(dead_zone=0.0, max_speed_m_s=0.05))
    dev.RECONNECT_PERIOD_S = 0.05
    with dev:
        assert opened == [{"device_index": 0}]  # no AxisConvention in the fake: 1.x-style call
        hid.push(buttons=[0, 1])
        wait_for(dev, lambda s: s.buttons.operator_present)
        hid.push(x=0.2)  # several reports queued: all drained in one read
        hid.push(buttons=[1, 0])
        s = wait_for(dev, lambda s: s.buttons.clutch)
        assert s.buttons.operator_present and s.twist[0] == pytest.approx(0.01)
        hid.unplugged = True
        s = wait_for(dev, lambda s: not s.buttons.operator_present)
        assert not s.buttons.clutch and np.all(s.twist == 0) and dev.unplugged
        hid.unplugged = False
        wait_for(dev, lambda s: not dev.unplugged, timeout_s=5)
    assert dev.errors == 0
