"""One virtualenv per peer under `bench/.peers/<name>` (ignored by git), installed from PyPI
with pip, so no peer ever becomes a dependency of Conveyor; `_harness` holds matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.peers import PEERS

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "bench" / ".peers"
HARNESS = "_harness"
HARNESS_REQUIREMENTS = ("matplotlib",)


def base_python() -> str:
    """The interpreter the project's own venv was made from (same version for every peer)."""
    for name in ("python3", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return sys.executable


def python_of(name: str) -> str:
    if name == "conveyor":
        return sys.executable
    return str(VENVS / name / "bin" / "python")


def ensure(name: str, requirements: tuple[str, ...]) -> str:
    """Create (once) the venv `name` with `requirements`; return its python. Raises
    RuntimeError with pip's own words when the install fails."""
    if not requirements:
        return python_of(name)
    venv = VENVS / name
    stamp = venv / ".requirements"
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return python_of(name)
    VENVS.mkdir(parents=True, exist_ok=True)
    subprocess.run([base_python(), "-m", "venv", "--clear", str(venv)], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         *requirements],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    stamp.write_text(wanted)
    return python_of(name)


def ensure_peer(name: str) -> str:
    return ensure(name, PEERS[name].requirements)


def ensure_harness() -> str:
    return ensure(HARNESS, HARNESS_REQUIREMENTS)
