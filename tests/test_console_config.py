"""The console's TOML settings, flag overrides, and the input-device factory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from master_console.cli import _parser, settings_from_args
from master_console.config import (
    ConfigError,
    ConsoleSettings,
    filter_kind,
    input_recording_from_session,
    load_settings,
    make_device,
    settings_from_dict,
)
from master_console.devices import GloveReceiver, KeyboardDevice, ReplayDevice
from master_console.recording import Recorder
from master_console.synthetic import SyntheticHand

FULL = """
[console]
rate_hz = 500
filter = "wflc"
scale = 0.25
rt_priority = 0

[link]
endpoint = "tcp://10.1.2.3:6000"
profile = "5g-clinical"

[input]
device = "glove"

[glove]
endpoint = "tcp://127.0.0.1:5599"
jaw_open_rad = 0.8

[synthetic]
seed = 7

[force_feedback]
enabled = true
max_force_n = 2.0

[display]
mode = "headless"
snapshot_dir = "snaps"

[record]
path = "out.rec"
video = true
"""


def test_a_full_file_loads_with_its_values(tmp_path) -> None:
    f = tmp_path / "console.toml"
    f.write_text(FULL)
    s = load_settings(f)
    assert s.console.rate_hz == 500.0 and isinstance(s.console.rate_hz, float)
    assert s.console.filter == "wflc" and s.console.scale == 0.25 and s.console.rt_priority == 0
    assert s.link.endpoint == "tcp://10.1.2.3:6000" and s.link.profile == "5g-clinical"
    assert s.input.device == "glove" and s.glove.jaw_open_rad == 0.8
    assert s.synthetic.seed == 7
    assert s.force_feedback_config().enabled and s.force_feedback_config().max_force_n == 2.0
    assert s.display_config().mode == "headless"
    assert s.record.path == "out.rec" and s.record.video
    dev = make_device(s)
    assert isinstance(dev, GloveReceiver) and dev.endpoint == "tcp://127.0.0.1:5599"


def test_no_file_means_the_embedded_defaults() -> None:
    s = load_settings(None)
    assert s == ConsoleSettings()
    assert s.input.device == "synthetic" and s.link.endpoint == ""  # "" = local sim arm
    assert not s.force_feedback_config().enabled  # off by default
    assert isinstance(make_device(s), SyntheticHand)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"consol": {}}, "unknown section(s) consol"),
        ({"console": {"rate": 1000}}, "[console] unknown key(s) rate; valid keys: rate_hz"),
        ({"console": {"scale": "0.2"}}, "[console] scale must be a number"),
        ({"console": {"rt_priority": 1.5}}, "[console] rt_priority must be an integer"),
        ({"record": {"video": 1}}, "[record] video must be true or false"),
        ({"input": {"device": "mouse"}}, "device 'mouse' is not one of synthetic"),
        ({"console": {"filter": "kalmann"}}, "filter 'kalmann' is not one of none, default"),
        ({"link": []}, "[link] must be a table"),
        ({"force_feedback": {"max_force_n": -1.0}}, "[force_feedback]"),
        ({"display": {"mode": "hologram"}}, "[display]"),
        ({"joystick": {"axis": [0]}}, "[joystick]"),
    ],
)
def test_bad_settings_name_what_is_wrong(doc, needle) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict(doc)
    assert needle in str(err.value)


def test_rate_devices_skip_the_tremor_filter_unless_one_is_asked_for() -> None:
    assert filter_kind(settings_from_dict({})) == "default"
    assert filter_kind(settings_from_dict({"input": {"device": "glove"}})) == "default"
    for dev in ("joystick", "spacemouse", "keyboard"):
        assert filter_kind(settings_from_dict({"input": {"device": dev}})) == "none"
    s = settings_from_dict({"input": {"device": "joystick"}, "console": {"filter": "wflc"}})
    assert filter_kind(s) == "wflc"


def test_bad_toml_and_missing_file_say_which_file(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[console\nrate_hz = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_flags_override_the_file(tmp_path) -> None:
    f = tmp_path / "console.toml"
    f.write_text(FULL)
    args = _parser().parse_args(
        ["--config", str(f), "--scale", "0.1", "--input", "keyboard", "--force-feedback"]
    )
    s = settings_from_args(args)
    assert s.console.scale == 0.1 and s.console.filter == "wflc"  # flag wins, file kept
    assert s.input.device == "keyboard"
    assert isinstance(make_device(s), KeyboardDevice)
    args = _parser().parse_args(["--config", str(f), "--display", "off", "--record-video"])
    s = settings_from_args(args)
    assert s.display_config().mode == "off" and s.display_config().snapshot_dir == "snaps"
    assert s.record.video and s.record.path == "out.rec"


def test_replay_takes_a_console_recording(tmp_path) -> None:
    path = tmp_path / "session.rec"
    with Recorder(path) as rec:
        for i in range(50):
            pose = [0.001 * i, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
            rec.record(
                "input", 1_000_000_000 + i * 1_000_000, pose=pose, jaw=0.3, clutch=i >= 10,
                present=True,
            )  # fmt: skip
            rec.record("command", 1_000_000_000 + i * 1_000_000, seq=i)
    r = input_recording_from_session(path)
    assert len(r) == 50
    assert np.allclose(r.t_s[:3], [0.0, 0.001, 0.002])
    assert np.allclose(r.pose[-1][:3], [0.049, 0.0, 0.0])
    assert not r.clutch[9] and r.clutch[10] and r.operator_present.all()
    s = settings_from_dict({"input": {"device": "replay"}, "replay": {"path": str(path)}})
    dev = make_device(s)
    assert isinstance(dev, ReplayDevice) and len(dev.recording) == 50


def test_replay_without_a_usable_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs a file"):
        make_device(settings_from_dict({"input": {"device": "replay"}}))
    s = settings_from_dict({"input": {"device": "replay"}, "replay": {"path": "nope.rec"}})
    with pytest.raises(ConfigError, match="does not exist"):
        make_device(s)
    empty = tmp_path / "empty.rec"
    Recorder(empty).close()
    s = settings_from_dict({"input": {"device": "replay"}, "replay": {"path": str(empty)}})
    with pytest.raises(ConfigError, match="no input samples"):
        make_device(s)


def test_the_cli_refuses_a_bad_config_before_starting_anything(tmp_path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[console]\nscale = 'big'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "master_console.cli", "--config", str(f), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "[console] scale must be a number" in proc.stderr
    assert "connected" not in proc.stdout
