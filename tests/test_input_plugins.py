"""Input devices from other packages: entry points, options, the conformance kit, the CLI.

The kit must pass the built-ins that run headless here (synthetic, replay, the glove receiver
fed by a GloveSender, the keyboard) and catch each deliberately broken device at the right
check, with a message that names the cause. The template package in ``examples/input_template``
must be installed (``pip install -e examples/input_template``) for its end-to-end test.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from master_console.cli import _parser, settings_from_args
from master_console.config import (
    ENTRY_POINT_GROUP,
    ConfigError,
    filter_kind,
    input_entry_points,
    installed_input_devices,
    make_device,
    parse_input_options,
    parse_option_value,
    settings_from_dict,
)
from master_console.device_check import (
    INPUT_CHECKS,
    CheckOptions,
    DeviceConformanceError,
    check_buttons,
    check_first_sample,
    check_motion,
    check_name,
    format_input_report,
    input_device_factory,
    run_input_conformance,
)
from master_console.devices import (
    Buttons,
    GloveFrame,
    GloveReceiver,
    GloveSender,
    InputDevice,
    InputRecording,
    InputSample,
    KeyboardDevice,
)
from master_console.recording import load_recording
from master_console.synthetic import SyntheticHand
from tests.input_broken import GoodDevice, Millimetres

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 0.4  # the kit's watch time in these tests: long enough to see each fault
TIMING_CHECKS = {"sample_rate", "latest_nonblocking"}  # may also trip on a loaded machine
TEMPLATE_HINT = (
    "the template input device 'acme-stylus' is not installed: pip install -e "
    "examples/input_template (the README's test command does)"
)


def _failed(rows: list[tuple[str, bool, str]]) -> dict[str, str]:
    return {name: msg for name, ok, msg in rows if not ok}


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "master_console.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


# ---------------------------------------------------------------------------------------------
# A fake installed package: a .dist-info with entry points, on sys.path


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution registering test devices (one good, one rate device, two broken) in the
    entry-point group, found by importlib.metadata like any installed package."""
    info = tmp_path / "site" / "input_test_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: input-test-plugins\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "test-good = tests.input_broken:GoodDevice\n"
        "test-rate = tests.input_broken:RateInputDevice\n"
        "test-missing = no_such_module_for_input_tests:Device\n"
        "test-notadevice = tests.input_broken:NotADevice\n"
    )
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    return site


def _env_with(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    return env


# ---------------------------------------------------------------------------------------------
# Deliberately broken devices: each must fail at the right check, naming the cause


class TooSlow(GoodDevice):
    """Declares 1000 Hz, delivers 100."""

    sample_rate_hz = 1000.0

    def __init__(self) -> None:
        super().__init__(rate_hz=100.0)


class WallClock(GoodDevice):
    """Stamps samples with time.time_ns()."""

    def stamp(self) -> int:
        return time.time_ns()


class NanPose(GoodDevice):
    """A NaN creeps into the pose after a few samples."""

    def position(self, t_s: float) -> np.ndarray:
        p = super().position(t_s)
        if self._n > 5:
            p[1] = math.nan
        return p


class BlockingLatest(GoodDevice):
    """latest() waits for the next sample (like a queue.get()) instead of returning at once."""

    def __init__(self) -> None:
        super().__init__(rate_hz=100.0)
        self._new = threading.Event()

    def _store(self, sample: InputSample) -> None:
        super()._store(sample)
        self._new.set()

    def latest(self) -> InputSample | None:
        self._new.wait(0.05)
        self._new.clear()
        return super().latest()


class UndeclaredCamera(GoodDevice):
    """Presses the camera button, though button_roles says clutch and operator_present."""

    def buttons(self, n: int) -> Buttons:
        return Buttons(clutch=True, operator_present=True, camera=n % 2 == 0)


class SeqWraps(GoodDevice):
    """seq counts to 20 and starts again."""

    def seq(self, n: int) -> int:
        return n % 20


BROKEN = [
    (Millimetres, "motion", "millimetres instead of metres"),
    (TooSlow, "sample_rate", "declared sample_rate_hz 1000 Hz"),
    (WallClock, "timestamps", "time.time_ns()"),
    (NanPose, "motion", "not finite"),
    (BlockingLatest, "latest_nonblocking", "latest() blocks"),
    (UndeclaredCamera, "buttons", "'camera' is not in the declared button_roles"),
    (SeqWraps, "seq", "seq must increase with every new sample"),
]


@pytest.mark.parametrize(("cls", "check", "needle"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_broken_device_fails_at_the_right_check(cls, check, needle) -> None:
    rows = run_input_conformance(cls, seconds=SECONDS)
    failed = _failed(rows)
    assert check in failed, format_input_report(rows)
    assert needle in failed[check], failed[check]
    # nothing else failed (timing checks excepted: they may trip on a loaded machine)
    assert set(failed) - TIMING_CHECKS <= {check}, format_input_report(rows)
    if check == "sample_rate":
        assert "new samples/s" in failed[check]  # both figures


def test_the_millimetre_hint_names_the_position_and_the_box() -> None:
    with pytest.raises(DeviceConformanceError) as err:
        check_motion(Millimetres, CheckOptions(seconds=SECONDS))
    msg = str(err.value)
    assert "outside the declared position_range_m" in msg and "divided by 1000" in msg


class _Garbage(InputDevice):
    """latest() returns a dict; send_force accepts anything."""

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def latest(self):  # type: ignore[override]
        return {"pose": [0, 0, 0]}

    def send_force(self, wrench: np.ndarray) -> None:
        pass


class _CannotConnect(GoodDevice):
    def _open(self) -> None:
        raise RuntimeError("no device on /dev/acme0")


def _unbuildable() -> InputDevice:
    raise RuntimeError("vendor SDK missing")


@pytest.mark.parametrize(
    ("factory", "needle"),
    [
        (_Garbage, "latest() returned a dict"),
        (_CannotConnect, "connect() raised RuntimeError: no device on /dev/acme0"),
        (_unbuildable, "make_device() raised RuntimeError: vendor SDK missing"),
        (lambda: object(), "not a master_console.devices.InputDevice"),
    ],
)
def test_run_input_conformance_never_raises(factory, needle) -> None:
    rows = run_input_conformance(factory, seconds=0.2)
    assert [r[0] for r in rows] == [check_name(c) for c in INPUT_CHECKS]
    assert any(needle in msg for _, ok, msg in rows if not ok), format_input_report(rows)
    report = format_input_report(rows, "x")
    assert report.splitlines()[0].startswith("x: ") and "FAIL" in report


@pytest.mark.slow
def test_a_latest_that_never_returns_fails_instead_of_hanging() -> None:
    class Stuck(GoodDevice):
        def latest(self) -> InputSample | None:
            threading.Event().wait()  # forever
            return None

    rows = run_input_conformance(Stuck, checks=[check_first_sample])
    assert not rows[0][1] and "did not return within" in rows[0][2]


# ---------------------------------------------------------------------------------------------
# Built-ins that run headless pass


def test_the_synthetic_hand_passes() -> None:
    rows = run_input_conformance(input_device_factory("synthetic", seed=3), seconds=SECONDS)
    assert not _failed(rows), format_input_report(rows)


def test_a_replayed_recording_passes(tmp_path: Path) -> None:
    t = np.arange(0.0, 3.0, 1 / 200)
    pose = np.zeros((t.size, 7))
    pose[:, 0] = 0.02 * np.sin(t)
    pose[:, 6] = 1.0
    rec = InputRecording(t, pose, 0.2 + 0.1 * np.sin(t), (t % 1.0) > 0.2, np.ones(t.size, bool))
    path = tmp_path / "hand.npz"
    rec.save(path)
    factory = input_device_factory("replay", path=str(path), loop=True)
    dev = factory()
    assert dev.sample_rate_hz == pytest.approx(200.0, rel=0.01)
    assert dev.position_range_m[1][0] == pytest.approx(0.02 * np.sin(t).max())
    rows = run_input_conformance(factory, seconds=SECONDS)
    assert not _failed(rows), format_input_report(rows)


@pytest.fixture
def glove_stream() -> Iterator[str]:
    """A GloveSender thread sending 200 Hz frames; yields the endpoint to connect to."""
    sender = GloveSender("tcp://127.0.0.1:*")
    stop = threading.Event()

    def run() -> None:
        start = time.monotonic()
        n = 0
        while not stop.is_set():
            n += 1
            due = start + n / 200.0
            time.sleep(max(0.0, due - time.monotonic()))
            a = time.monotonic() - start
            frame = GloveFrame(
                np.array([0.1 * math.cos(a), 0.1 * math.sin(a), 0.3, 0.0, 0.0, 0.0, 1.0]),
                grip=0.4,
                clutch=(n // 100) % 2 == 0,
            )
            sender.send(frame)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sender.endpoint
    finally:
        stop.set()
        thread.join(2.0)
        sender.close()


def test_the_glove_receiver_fed_by_a_sender_passes(glove_stream: str) -> None:
    factory = input_device_factory("glove", endpoint=glove_stream, sample_rate_hz=200.0)
    dev = factory()
    assert isinstance(dev, GloveReceiver) and dev.sample_rate_hz == 200.0
    rows = run_input_conformance(factory, seconds=SECONDS)
    assert not _failed(rows), format_input_report(rows)


def test_the_keyboard_passes_and_its_buttons_pass_interactively() -> None:
    made: list[KeyboardDevice] = []

    def factory() -> KeyboardDevice:
        made.append(KeyboardDevice())
        return made[-1]

    keys = {"clutch": "space", "operator_present": "p", "camera": "c"}
    asked: list[str] = []

    def operator(text: str) -> None:  # the "human": presses the key the prompt asks for
        role = next(r for r in keys if text.startswith(f"press and release {r} "))
        asked.append(role)
        made[-1].press(keys[role])
        threading.Timer(0.1, made[-1].release, args=(keys[role],)).start()

    rows = run_input_conformance(factory, seconds=SECONDS, interactive=True, prompt=operator)
    assert not _failed(rows), format_input_report(rows)
    assert asked == ["clutch", "operator_present", "camera"]
    assert "operator pressed clutch" in dict((n, m) for n, _, m in rows)["buttons"]


def test_a_role_nobody_presses_fails_the_interactive_check() -> None:
    opts = CheckOptions(seconds=0.2, interactive=True, prompt=lambda t: None, role_timeout_s=0.3)
    with pytest.raises(DeviceConformanceError, match=r"clutch did not change within 0\.3 s"):
        check_buttons(KeyboardDevice, opts)


# ---------------------------------------------------------------------------------------------
# Declarations and the tremor filter


def test_built_ins_declare_what_they_deliver() -> None:
    kb = KeyboardDevice()
    assert kb.rate_input and kb.position_range_m is None and kb.max_speed_m_s == 0.05
    assert kb.button_roles == ("clutch", "operator_present", "camera")
    hand = make_device(settings_from_dict({}))
    assert isinstance(hand, SyntheticHand) and not hand.rate_input
    assert hand.sample_rate_hz == 1000.0 and hand.position_range_m[1][0] == pytest.approx(0.055)
    js = make_device(settings_from_dict({"input": {"device": "joystick"}}))
    assert js.rate_input and js.max_speed_m_s == 0.05 and js.sample_rate_hz == 1000.0
    assert "camera" in js.button_roles  # the default config maps a camera button


def test_the_tremor_filter_follows_a_plug_ins_rate_input(plugin_dist: Path) -> None:
    assert filter_kind(settings_from_dict({"input": {"device": "test-good"}})) == "default"
    s = settings_from_dict({"input": {"device": "test-rate"}})
    assert filter_kind(s) == "none"
    assert filter_kind(s, make_device(s)) == "none"
    s = settings_from_dict({"input": {"device": "test-rate"}, "console": {"filter": "wflc"}})
    assert filter_kind(s) == "wflc"


# ---------------------------------------------------------------------------------------------
# Entry points and options


def test_installed_devices_list_the_built_ins_and_survive_a_broken_plug_in(plugin_dist) -> None:
    found = {d.name: d for d in installed_input_devices()}
    assert {"synthetic", "keyboard", "glove", "replay", "joystick", "expert"} <= set(found)
    assert found["synthetic"].description.startswith("A synthetic surgeon hand")
    assert found["test-good"].cls is GoodDevice and found["test-good"].error is None
    assert "ModuleNotFoundError" in found["test-missing"].error
    assert "not a subclass of master_console.devices.InputDevice" in found["test-notadevice"].error


def test_a_plug_in_takes_options_from_its_table_and_from_the_command_line(
    plugin_dist, tmp_path
) -> None:
    doc = {"input": {"device": "test-good"}, "devices": {"test-good": {"radius_m": 0.02}}}
    dev = make_device(settings_from_dict(doc))
    assert isinstance(dev, GoodDevice) and dev.radius_m == 0.02
    f = tmp_path / "console.toml"
    f.write_text(
        '[input]\ndevice = "test-good"\n[devices.test-good]\nradius_m = 0.02\nlabel = "file"\n'
    )
    args = _parser().parse_args(
        ["--config", str(f), "--input-option", "radius_m=0.03", "--input-option", "rate_hz=250"]
    )
    dev = make_device(settings_from_args(args))
    assert (dev.radius_m, dev.label, dev.rate_hz) == (0.03, "file", 250)
    args = _parser().parse_args(["--input", "test-good", "--input-option", "label=left hand"])
    assert make_device(settings_from_args(args)).label == "left hand"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (
            {"input": {"device": "test-good"}, "devices": {"test-good": {"radius": 1}}},
            "[devices.test-good] unknown option(s) radius for GoodDevice; accepted: rate_hz, "
            "radius_m, label",
        ),
        ({"devices": {"test-good": 3}}, "[devices.test-good] must be a table"),
        ({"devices": {"glove": {"bind": True}}}, "configured in its own section [glove]"),
        ({"input": {"device": "test-missing"}}, "cannot be loaded: ModuleNotFoundError"),
        ({"input": {"device": "mouse"}}, "device 'mouse' is not one of synthetic"),
    ],
)
def test_bad_plug_in_settings_name_what_is_wrong(plugin_dist, doc, needle) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict(doc)
    assert needle in str(err.value)


def test_an_unknown_input_lists_the_installed_ones(plugin_dist) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_args(_parser().parse_args(["--input", "hapticz"]))
    msg = str(err.value)
    assert "'hapticz' is not one of synthetic, keyboard" in msg
    assert f"entry-point group {ENTRY_POINT_GROUP!r}" in msg and "test-good" in msg
    with pytest.raises(LookupError, match="test-good"):
        input_device_factory("hapticz")


def test_input_options_parse_as_toml_values_else_strings() -> None:
    assert parse_option_value("5700") == 5700 and parse_option_value("1.5") == 1.5
    assert parse_option_value("true") is True and parse_option_value("[1, 2]") == [1, 2]
    assert parse_option_value("udp") == "udp" and parse_option_value("/tmp/x.npz") == "/tmp/x.npz"
    assert parse_option_value('"a b"') == "a b"
    assert parse_input_options(["port=5700", "backend=udp"]) == {"port": 5700, "backend": "udp"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_input_options(["port"])


def test_built_in_options_go_to_their_own_section() -> None:
    s = settings_from_args(_parser().parse_args(["--input-option", "seed=5"]))
    assert s.synthetic.seed == 5
    with pytest.raises(ConfigError, match=r"\[synthetic\] unknown key\(s\) sed"):
        settings_from_args(_parser().parse_args(["--input-option", "sed=5"]))
    with pytest.raises(ConfigError, match="expert takes no options"):
        settings_from_args(_parser().parse_args(["--input", "expert", "--input-option", "a=1"]))


# ---------------------------------------------------------------------------------------------
# The command line


@pytest.mark.slow
def test_check_input_synthetic_passes_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    proc = _run("check-input", "synthetic", "--seconds", str(SECONDS), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"input device conformance of synthetic: {len(INPUT_CHECKS)}/" in proc.stdout
    assert "PASS  sample_rate" in proc.stdout and "all checks passed" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["passed"] and doc["target"] == "master_console.synthetic:SyntheticHand"
    assert [c["name"] for c in doc["checks"]] == [check_name(c) for c in INPUT_CHECKS]


@pytest.mark.slow
def test_check_input_of_a_broken_class_exits_1_naming_the_cause() -> None:
    proc = _run("check-input", "tests.input_broken:Millimetres", "--seconds", str(SECONDS))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  motion" in proc.stdout
    assert "millimetres instead of metres" in proc.stdout


def test_check_input_of_an_unknown_name_exits_2_listing_installed_ones() -> None:
    proc = _run("check-input", "hapticz")
    assert proc.returncode == 2
    assert "'hapticz' is not one of synthetic" in proc.stderr
    assert ENTRY_POINT_GROUP in proc.stderr


def test_list_inputs_shows_names_descriptions_and_load_errors(plugin_dist: Path) -> None:
    proc = _run("--list-inputs", env=_env_with(plugin_dist))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "A synthetic surgeon hand" in lines["synthetic"]
    assert "master_console.synthetic:SyntheticHand" in lines["synthetic"]
    assert "A well-behaved 200 Hz pose device" in lines["test-good"]
    assert "CANNOT LOAD: ModuleNotFoundError" in lines["test-missing"]


def test_the_console_refuses_an_unknown_input_listing_installed_ones(plugin_dist) -> None:
    proc = _run("--input", "hapticz", "--seconds", "1", env=_env_with(plugin_dist))
    assert proc.returncode == 2
    assert "'hapticz' is not one of synthetic" in proc.stderr and "test-good" in proc.stderr
    assert "connected" not in proc.stdout


# ---------------------------------------------------------------------------------------------
# The template package (examples/input_template)


def test_the_template_input_device_is_installed() -> None:
    assert "acme-stylus" in input_entry_points(), TEMPLATE_HINT


@pytest.mark.slow
@pytest.mark.skipif("acme-stylus" not in input_entry_points(), reason=TEMPLATE_HINT)
def test_the_template_stylus_drives_the_sim_arm_end_to_end(tmp_path: Path) -> None:
    out, rec = tmp_path / "console.json", tmp_path / "session.rec"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "master_console.cli",
            "--sim",
            "--input",
            "acme-stylus",
            "--seconds",
            "3",
            "--json",
            str(out),
            "--record",
            str(rec),
            "--display",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "with input acme-stylus" in proc.stdout
    s = json.loads(out.read_text())
    assert s["ticks"] >= 2500 and s["commands_applied"] > 1000, s
    r = load_recording(rec)
    cmd, st = r.arrays("command"), r.arrays("state")
    engaged = cmd["clutch"].astype(bool)
    assert engaged.sum() > 1000  # the stylus held its clutch (released briefly at the start)
    moved = np.ptp(st["measured_cp"][:, :3], axis=0).max()
    assert moved > 1e-3, moved  # the stylus's path, scaled 5:1, moved the tool by millimetres


def test_built_in_classes_declare_themselves_when_built_directly() -> None:
    """The declarations live in the classes, not in make_device: a device built by hand (or by
    check-input as module:Class) declares the same."""
    from master_console.expert import ScriptedExpert
    from master_console.joystick import JoystickDevice, SpaceMouseDevice
    from master_console.synthetic import SyntheticHand

    for cls in (JoystickDevice, SpaceMouseDevice):
        dev = cls()
        assert dev.rate_input is True and dev.position_range_m is None
        assert dev.max_speed_m_s == dev.config.max_speed_m_s
        assert dev.jaw_range_rad == (0.0, dev.config.jaw_max_rad)
    hand = SyntheticHand()
    lo, hi = hand.position_range_m
    assert all(a < b for a, b in zip(lo, hi, strict=True))
    assert hand.jaw_range_rad == (hand.jaw, hand.jaw)
    assert ScriptedExpert().position_range_m is not None
