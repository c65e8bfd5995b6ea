"""The facts about the machine a benchmark ran on: cores, memory, CPU model, load."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def free_h() -> str:
    try:
        return subprocess.run(["free", "-h"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def describe() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "free_h": free_h(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_start": loadavg(),
    }
