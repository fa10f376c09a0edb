"""Arm drivers from other packages: the registry, ``slave-arm check-driver``, --list-drivers,
driver options, and the conformance kit as a pytest plug-in (fixture, hardware marker, report)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from network.link import free_tcp_endpoint
from slave_arm.kinematic import KinematicArm
from slave_arm.registry import (
    DriverLookupError,
    driver_summary,
    installed_drivers,
    load_driver_class,
    load_options,
    make_driver,
    parse_option,
)
from tests.broken_drivers import HoldDoesNothing

ROOT = Path(__file__).resolve().parents[1]


def slave_arm(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slave_arm.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
def test_load_by_name_and_by_import_path() -> None:
    assert load_driver_class("kinematic") is KinematicArm
    assert load_driver_class("slave_arm.kinematic:KinematicArm") is KinematicArm
    assert load_driver_class("tests.broken_drivers:HoldDoesNothing") is HoldDoesNothing


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nope", "installed: "),
        ("no_such_module_xyz:Arm", "cannot import 'no_such_module_xyz'"),
        ("slave_arm.kinematic:Nope", "has no 'Nope'"),
        ("math:pi", "not an ArmDriver subclass"),
        ("slave_arm.driver:ArmDriver", "is abstract: it does not implement"),
    ],
)
def test_lookup_errors_say_what_is_wrong(name: str, words: str) -> None:
    with pytest.raises(DriverLookupError) as err:
        load_driver_class(name)
    assert words in str(err.value)


def test_installed_drivers_have_summaries() -> None:
    drivers = {d.name: d for d in installed_drivers()}
    assert drivers["kinematic"].cls is KinematicArm and drivers["kinematic"].error is None
    assert drivers["kinematic"].summary.startswith("An ideal arm")
    assert drivers["sim"].summary  # the simulator describes itself too

    class NoDoc(KinematicArm):
        pass

    assert driver_summary(NoDoc) == ""  # its own docstring only, not the parent's


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("rate_hz=500", "rate_hz", 500),
        ("tracking_time_constant_s = 0.01", "tracking_time_constant_s", 0.01),
        ('control_mode="position"', "control_mode", "position"),
        ("control_mode=position", "control_mode", "position"),  # not TOML: text
        ("limits=[1, 2]", "limits", [1, 2]),
        ("gui=true", "gui", True),
    ],
)
def test_parse_option(text: str, key: str, value: object) -> None:
    assert parse_option(text) == (key, value)


@pytest.mark.parametrize("bad", ["novalue", "=3", "two words=1"])
def test_parse_option_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_option(bad)


def test_options_from_toml_then_pairs(tmp_path: Path) -> None:
    f = tmp_path / "arm.toml"
    f.write_text("[driver]\nrate_hz = 500\ntracking_time_constant_s = 0.01\n")
    assert load_options(f, ["rate_hz=250"]) == {"rate_hz": 250, "tracking_time_constant_s": 0.01}
    f.write_text("rate_hz = 400\n")  # no [driver] table: the top level
    assert load_options(f) == {"rate_hz": 400}
    with pytest.raises(ValueError, match="does not exist"):
        load_options(tmp_path / "missing.toml")
    f.write_text("rate_hz = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_options(f)


def test_make_driver_passes_options_and_refuses_unknown_ones() -> None:
    arm = make_driver("kinematic", {"rate_hz": 500})
    assert arm.description.control_rate_hz == 500
    # generic CLI flags go only where the constructor takes them, and never as None
    arm = make_driver("kinematic", {}, if_accepted={"gui": True, "seed": None, "rate_hz": 250})
    assert arm.description.control_rate_hz == 250
    with pytest.raises(ValueError, match=r"takes no option 'speed'.*its options: rate_hz"):
        make_driver("kinematic", {"speed": 1})


def test_conformance_params_mark_real_arms_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from slave_arm import registry
    from slave_arm.conformance import conformance_params

    group = registry.ENTRY_POINT_GROUP
    fake = [
        EntryPoint("kinematic", "slave_arm.kinematic:KinematicArm", group),
        EntryPoint("real", "tests.broken_drivers:PretendsHardware", group),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: fake)
    marks = {p.values[0]: [m.name for m in p.marks] for p in conformance_params()}
    assert marks == {"kinematic": [], "real": ["hardware"]}


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
def test_list_drivers_shows_descriptions() -> None:
    r = slave_arm("--list-drivers")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "An ideal arm whose tool pose follows" in lines["kinematic"]
    assert "[slave_arm.kinematic:KinematicArm]" in lines["kinematic"]
    assert "[sim.arm:SimArm]" in lines["sim"]


def test_check_driver_passes_with_a_report(tmp_path: Path) -> None:
    out = tmp_path / "kit.json"
    r = slave_arm("check-driver", "kinematic", "--driver-option", "rate_hz=500", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "driver 'kinematic' conformance: 16/16 checks passed" in r.stdout
    for section in ("contract", "units and frames", "limits", "hold and its latency", "watchdog"):
        assert f"\n  {section}" in r.stdout
    assert "[16/16] rate" in r.stdout  # progress while it runs
    assert "control rate 500 Hz" in r.stdout  # the option reached the driver
    data = json.loads(out.read_text())
    assert data["passed"] == data["total"] == 16 and data["options"] == {"rate_hz": 500}
    assert {c["section"] for c in data["checks"]} >= {"contract", "control rate"}
    assert not data["moves_hardware"]


@pytest.mark.parametrize(
    ("driver", "check", "words"),
    [
        ("Millimetres", "units_and_frames", "millimetres instead of metres"),
        ("HoldDoesNothing", "hold", "hold() did not stop it"),
        ("ZeroTimestamps", "timestamps", "timestamp_ns is 0"),
        ("AcceptsNaN", "bad_arguments", "servo_cp accepted a NaN pose"),
        ("TooSlow", "rate", "too slow"),
        ("Coasting", "watchdog", "past the last target"),
    ],
)
def test_check_driver_points_at_the_cause(driver: str, check: str, words: str) -> None:
    r = slave_arm("check-driver", f"tests.broken_drivers:{driver}", "--check", check)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "0/1 checks passed; FAILED: " + check in r.stdout
    assert f"FAIL  {check}" in r.stdout and words in r.stdout


def test_check_driver_asks_before_moving_a_real_arm() -> None:
    name = "tests.broken_drivers:PretendsHardware"
    r = slave_arm("check-driver", name, "--check", "connect")  # stdin is not a terminal
    assert r.returncode == 2
    assert "moves a real arm" in r.stderr and "--yes" in r.stderr
    assert "PASS" not in r.stdout  # nothing ran
    r = slave_arm("check-driver", name, "--check", "connect", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_driver_usage_errors() -> None:
    r = slave_arm("check-driver", "nope")
    assert r.returncode == 2 and "no arm driver named 'nope'; installed:" in r.stderr
    r = slave_arm("check-driver", "kinematic", "--driver-option", "speed=3")
    assert r.returncode == 2 and "takes no option 'speed'" in r.stderr


def test_serve_waits_for_a_driver_that_enables_over_a_few_ticks(tmp_path: Path) -> None:
    out = tmp_path / "arm.json"
    r = slave_arm(
        "--driver",
        "tests.broken_drivers:SlowToEnable",
        "--bind",
        free_tcp_endpoint(),
        "--seconds",
        "0.3",
        "--json",
        str(out),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(out.read_text())
    assert s["driver_errors"] == 0 and s["ticks"] >= 250
    r = slave_arm("check-driver", "tests.broken_drivers:SlowToEnable")
    assert r.returncode == 0, r.stdout + r.stderr


def test_serve_stops_clearly_when_the_arm_never_enables() -> None:
    r = slave_arm("--driver", "tests.broken_drivers:NeverEnables", "--bind", free_tcp_endpoint())
    assert r.returncode == 1
    assert "did not bring the arm to ENABLED within 2 s (operating_state is DISABLED)" in r.stderr


def test_serve_refuses_an_unknown_driver_option() -> None:
    r = slave_arm("--driver", "kinematic", "--driver-option", "speed=3", "--seconds", "0.1")
    assert r.returncode == 2 and "takes no option 'speed'" in r.stderr


# ---------------------------------------------------------------------------------------------
# The pytest plug-in (in a separate pytest run, as a driver package's tests would use it)
# ---------------------------------------------------------------------------------------------
PLUGIN_TESTS = """
import pytest
from slave_arm.kinematic import KinematicArm
from tests.broken_drivers import HoldDoesNothing, PretendsHardware

def test_kinematic(conformance_check):
    conformance_check(KinematicArm)

@pytest.mark.parametrize("rate", [250])
def test_by_name_with_options(conformance_check, rate):
    conformance_check("kinematic", rate_hz=rate)

def test_broken(conformance_check):
    if conformance_check.name in ("hold", "connect"):
        conformance_check(HoldDoesNothing)

@pytest.mark.hardware
def test_moves_the_arm():
    pass

def test_real_arm_unmarked(conformance_check):
    conformance_check(PretendsHardware)  # skipped all the same without --hardware
"""


def test_pytest_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_kit=PLUGIN_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for tests.broken_drivers
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rfs")
    # 16 checks x 3 tests, one of them failing; the hardware tests are skipped
    result.assert_outcomes(passed=47, failed=1, skipped=17)
    out = result.stdout.str()
    assert "test_kit.py::test_broken[hold] - Failed: conformance check 'hold' fail" in out
    assert "hold() did not stop it" in out
    assert "moves a real arm: run pytest with --hardware" in out
    # the report, per driver and parameters, in the terminal summary
    assert "telesurgery driver conformance" in out
    assert "slave_arm.kinematic:KinematicArm: 16/16 checks passed" in out
    assert "slave_arm.kinematic:KinematicArm rate_hz=250 (rate=250): 16/16 checks passed" in out
    assert "tests.broken_drivers:HoldDoesNothing: 1/2 checks passed; FAILED: hold" in out
    assert "control rate 250 Hz" in out  # the option reached the driver
    hardware = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hardware", "-k", "moves")
    hardware.assert_outcomes(passed=1, deselected=64)
    real = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--hardware", "-k", "real_arm and (connect or hold)"
    )
    real.assert_outcomes(passed=3, deselected=62)  # connect, disconnect, hold: it runs
