"""Describe the machine a benchmark ran on, so figures are never quoted without it."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, core count, OS, Python and the versions of the libraries that set the figures."""
    import numpy
    import zmq

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
    }
    try:
        import msgpack

        info["msgpack"] = ".".join(map(str, msgpack.version))
    except ImportError:  # pragma: no cover - a dependency
        pass
    return info


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One line for a report header."""
    i = info or machine_info()
    return (
        f"{i['cpu']}, {i['cores']} cores, {i['os']}, Python {i['python']}, "
        f"pyzmq {i['pyzmq']} (libzmq {i['libzmq']})"
    )
