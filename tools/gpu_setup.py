"""The steps of ``make setup GPU=1`` that run before the virtual environment exists, so with the
standard library only (``python3 tools/gpu_setup.py --help``).

``check-driver`` stops, saying why, unless ``nvidia-smi`` reports an NVIDIA driver new enough for
the CUDA that the lock's torch wheel was built for (read from the lock's ``nvidia-cuda-runtime`` pin):
without it torch sees no GPU and every stage quietly runs on the CPU.

``requirements OUT`` writes the GPU requirement list: ``requirements/lock.txt`` with the pins of
``requirements/lock-gpu.txt`` added and the packages they replace left out (onnxruntime-gpu and
onnxruntime are one ``onnxruntime`` module: installed together, one overwrites the other's files).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements"
LOCK, GPU_LOCK = REQUIREMENTS / "lock.txt", REQUIREMENTS / "lock-gpu.txt"

#: the oldest Linux x86_64 driver of each CUDA major version: that of its x.0 GA release in NVIDIA's
#: CUDA Toolkit release notes ("CUDA Toolkit and Corresponding Driver Versions": 13.0 GA >= 580.65.06,
#: 12.0 GA >= 525.60.13); by minor version compatibility every x.y runs on it (NVIDIA's CUDA
#: Compatibility guide: CUDA 13.x needs a driver >= 580, 12.x >= 525)
MIN_DRIVER = {13: "580.65.06", 12: "525.60.13"}
#: the package whose pin tells which CUDA the lock's torch wheel was built for
CUDA_RUNTIME = "nvidia-cuda-runtime"
#: GPU packages and the CPU packages of the lock they replace
REPLACES = {"onnxruntime-gpu": "onnxruntime"}


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file by canonical name, comments left out."""
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            found[canonical(re.split(r"[=<>!~;\[ ]", requirement, maxsplit=1)[0])] = requirement
    return found


def gpu_requirements(lock: Path = LOCK, gpu_lock: Path = GPU_LOCK) -> list[str]:
    """The lock's pins without those the GPU pins replace or repin, then the GPU pins."""
    gpu = pins(gpu_lock)
    dropped = set(gpu) | {canonical(REPLACES[name]) for name in gpu if name in REPLACES}
    return [line for name, line in pins(lock).items() if name not in dropped] + list(gpu.values())


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def cuda_version(lock: Path = LOCK) -> tuple[int, int]:
    """(major, minor) of the CUDA the lock's torch wheel was built for."""
    pin = pins(lock).get(CUDA_RUNTIME)
    if pin is None:
        raise SystemExit(f"{lock} pins no {CUDA_RUNTIME}: cannot tell which CUDA its torch wheel needs")
    major, minor = version(pin.partition("==")[2])[:2]
    return major, minor


def driver_versions(need: str) -> list[str]:
    """The driver version of each GPU as ``nvidia-smi`` reports it; where it cannot, a SystemExit
    saying why, and ``need`` (the driver the lock needs)."""
    command = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SystemExit(f"make setup GPU=1: nvidia-smi not found: no NVIDIA driver is installed here ({need}); "
                         "install one, or run make setup without GPU=1 for the CPU") from None
    except subprocess.TimeoutExpired:
        raise SystemExit(f"make setup GPU=1: nvidia-smi did not answer within 60 s ({need})") from None
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise SystemExit(f"make setup GPU=1: nvidia-smi failed (exit {result.returncode}), so the NVIDIA driver "
                         f"does not work here ({need}): {output}")
    found = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not found or not all(re.fullmatch(r"\d+(\.\d+)*", v) for v in found):
        raise SystemExit(f"make setup GPU=1: no driver version in nvidia-smi's answer {output!r} ({need})")
    return found


def check_driver(lock: Path = LOCK) -> str:
    """What was checked, where the driver is new enough for the lock's CUDA; else a SystemExit
    saying which driver is needed."""
    major, minor = cuda_version(lock)
    if major not in MIN_DRIVER:
        raise SystemExit(f"make setup GPU=1: no known minimum driver for CUDA {major}.{minor} (the lock's "
                         f"{CUDA_RUNTIME}): add it to MIN_DRIVER in {Path(__file__).name}")
    need = f"the lock's torch is built for CUDA {major}.{minor}, which needs an NVIDIA driver >= {MIN_DRIVER[major]}"
    oldest = min(driver_versions(need), key=version)
    if version(oldest) < version(MIN_DRIVER[major]):
        raise SystemExit(f"make setup GPU=1: the NVIDIA driver here is {oldest}, too old: {need}; update the "
                         "driver, or run make setup without GPU=1 for the CPU")
    return f"NVIDIA driver {oldest}: new enough for CUDA {major}.{minor} (it needs >= {MIN_DRIVER[major]})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-driver", help="stop unless the NVIDIA driver is new enough for the lock's CUDA")
    write = commands.add_parser("requirements", help="write the GPU requirement list")
    write.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check-driver":
        print(check_driver())
    else:
        args.out.write_text(f"# written by tools/gpu_setup.py from {LOCK.name} and {GPU_LOCK.name}\n"
                            + "\n".join(gpu_requirements()) + "\n")


if __name__ == "__main__":
    sys.exit(main())
