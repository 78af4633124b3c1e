"""``satmae info``: versions of the stack and the compute available here."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
from typing import Any

from satmae import __version__

PACKAGES: tuple[str, ...] = (
    "torch",
    "torchvision",
    "torchgeo",
    "rasterio",
    "timm",
    "lightning",
    "kornia",
    "xarray",
    "numpy",
)


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect_info() -> dict[str, Any]:
    """Gather versions, accelerators and threading facts as a JSON-able dict."""
    import torch

    from satmae.train.precision import cpu_supports_bf16

    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    return {
        "satmae": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "cuda": {
            "available": cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else [],
            "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        },
        "mps": mps,
        "cpu": {
            "capability": torch.backends.cpu.get_cpu_capability(),
            "bf16": cpu_supports_bf16(),
            "threads": torch.get_num_threads(),
        },
    }


def _print_table(info: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("satmae", info["satmae"]),
        ("python", info["python"]),
        ("platform", info["platform"]),
    ]
    rows += [(name, version) for name, version in info["packages"].items()]
    cuda = info["cuda"]
    devices = ", ".join(cuda["devices"]) or "none"
    rows += [
        ("cuda", f"{'yes' if cuda['available'] else 'no'} ({devices})"),
        ("cuda bf16", "yes" if cuda["bf16"] else "no"),
        ("mps", "yes" if info["mps"] else "no"),
        ("cpu capability", info["cpu"]["capability"]),
        ("cpu bf16", "yes" if info["cpu"]["bf16"] else "no"),
        ("threads", str(info["cpu"]["threads"])),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def run(args: argparse.Namespace) -> int:
    """Print the environment report as a table or JSON."""
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_table(info)
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae info``."""
    parser = subparsers.add_parser(
        "info",
        help="show package versions and available compute (CUDA, MPS, CPU bf16, threads)",
        description="Show package versions and the compute available on this machine.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)
