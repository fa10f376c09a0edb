"""examples/driver_template, installed as an integrator would: found by entry point, passes the
kit through ``slave-arm check-driver``, and is served by ``slave-arm`` to a real console."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from network.link import free_tcp_endpoint
from slave_arm.registry import installed_drivers

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -e examples/driver_template (the README's test command does)"


def test_the_template_driver_is_installed() -> None:
    drivers = {d.name: d for d in installed_drivers()}
    assert "acme" in drivers, f"the template driver 'acme' is not installed: {INSTALL}"
    assert drivers["acme"].error is None, drivers["acme"].error
    assert drivers["acme"].summary  # --list-drivers describes it


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["velocity", "position"])
def test_check_driver_passes_the_template(mode: str, tmp_path: Path) -> None:
    out = tmp_path / "kit.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "slave_arm.cli",
            "check-driver",
            "acme",
            "--driver-option",
            f'control_mode="{mode}"',
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    assert data["passed"] == data["total"] >= 16 and not data["moves_hardware"]
    print(r.stdout)


@pytest.mark.slow
def test_slave_arm_serves_the_template_to_a_real_console(tmp_path: Path) -> None:
    endpoint = free_tcp_endpoint()
    arm = subprocess.Popen(
        [sys.executable, "-m", "slave_arm.cli", "--driver", "acme", "--bind", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert arm.stdout is not None
        line = arm.stdout.readline()
        assert line.startswith("READY"), line + (arm.stderr.read() if arm.stderr else "")
        out = tmp_path / "console.json"
        console = subprocess.run(
            [
                sys.executable,
                "-m",
                "master_console.cli",
                "--connect",
                endpoint,
                "--seconds",
                "3",
                "--json",
                str(out),
                "--display",
                "off",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert console.returncode == 0, console.stderr[-2000:]
        assert "connected to arm 'acme'" in console.stdout + console.stderr
        s = json.loads(out.read_text())
        assert s["commands_applied"] > 1000  # the synthetic hand drove the template arm
        assert 0 < s["e2e_latency_ms"]["p50"] < 20
    finally:
        arm.terminate()
        arm.wait(timeout=10)
