"""``satmae evaluate``: an encoder on EuroSAT, BigEarthNet or OSCD, with baselines, to a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from satmae.cli import CommandError

BENCHMARK_NAMES: tuple[str, ...] = (
    "eurosat",
    "eurosat-spatial",
    "bigearthnet",
    "bigearthnet-v2",
    "oscd",
)
CLASSIFICATION_PROTOCOLS: tuple[str, ...] = ("knn", "linear", "finetune")
CHANGE_PROTOCOLS: tuple[str, ...] = ("frozen", "finetune")


def _protocol(args: argparse.Namespace) -> str:
    """The protocol, defaulted and checked against the benchmark's kind."""
    change = args.benchmark == "oscd"
    allowed = CHANGE_PROTOCOLS if change else CLASSIFICATION_PROTOCOLS
    protocol: str = args.protocol or ("frozen" if change else "linear")
    if protocol not in allowed:
        kind = "change detection (oscd)" if change else f"classification ({args.benchmark})"
        raise CommandError(
            f"--protocol {protocol} does not apply to {kind}; choose one of {', '.join(allowed)}"
        )
    return protocol


def model_info(source: str, encoder: Any, random_init: bool) -> dict[str, Any]:
    """The report's ``model`` entry."""
    from satmae.embed.raster import weights_hash

    provenance = encoder.provenance
    normalization = encoder.normalization
    return {
        "source": source,
        "name": str(provenance.get("registry") or provenance.get("name") or Path(source).name),
        "weights_hash": weights_hash(encoder),
        "random_init": random_init,
        "bands": list(encoder.bands),
        "normalization": "none"
        if normalization is None
        else f"{normalization.mode}: {normalization.stats.provenance or 'statistics'}",
        "architecture": {
            "embed_dim": encoder.config.embed_dim,
            "depth": encoder.config.depth,
            "patch_size": encoder.config.patch_size,
            "img_size": list(encoder.config.img_size),
            "temporal": encoder.config.temporal,
        },
    }


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report, print its verdict; or compare reports."""
    from satmae.eval.report import compare_reports
    from satmae.io import claim_output

    if args.compare:
        print(compare_reports([Path(p) for p in args.compare]))
        return 0
    missing = [f"--{n}" for n in ("benchmark", "model", "data-root", "out") if not _given(args, n)]
    if missing:
        raise CommandError(f"give {', '.join(missing)} (or --compare A.json B.json)")
    protocol = _protocol(args)
    out = Path(args.out)
    # claimed before the work: a second run on the same report fails at once, not at the end
    with claim_output(out / "report.json", overwrite=args.overwrite):
        return _evaluate(args, protocol, out)


def _evaluate(args: argparse.Namespace, protocol: str, out: Path) -> int:
    """Score the encoder and write the report (``out/report.json`` claimed by the caller)."""
    from satmae.embed.raster import open_encoder
    from satmae.eval.report import package_versions, satmae_info_dict, write_report

    encoder = open_encoder(args.model, args.device, random_init=args.random_init)
    info = model_info(args.model, encoder, args.random_init)
    progress = not args.quiet
    if args.benchmark == "oscd":
        result = _run_change(args, protocol, encoder, info, out, progress)
    else:
        from satmae.eval.classification import evaluate_classification

        result = evaluate_classification(
            encoder,
            args.benchmark,
            args.data_root,
            protocol,
            seeds=tuple(args.seeds),
            download=args.download,
            date=args.date,
            cache_dir=args.cache_dir or out / "features",
            batch_size=args.batch_size,
            finetune_options={
                key: value
                for key, value in (("epochs", args.epochs), ("lr", args.lr))
                if value is not None
            },
            progress=progress,
            model_info=info,
        )
    result["versions"] = package_versions()
    result["machine"] = {**result.get("machine", {}), **satmae_info_dict()}
    path = write_report(result, out, overwrite=args.overwrite)
    print(result["verdict"])
    print(f"wrote {path.with_name('report.json')} and {path}")
    return 0


def _given(args: argparse.Namespace, name: str) -> bool:
    return getattr(args, name.replace("-", "_")) is not None


def _run_change(
    args: argparse.Namespace,
    protocol: str,
    encoder: Any,
    info: dict[str, Any],
    out: Path,
    progress: bool,
) -> dict[str, Any]:
    from dataclasses import replace

    from satmae.eval.change.evaluate import ChangeOptions, evaluate_change
    from satmae.eval.change.model import ChangeConfig, date_blocks
    from satmae.eval.change.train import FitConfig

    model = ChangeConfig(
        mode=args.change_mode, blocks=date_blocks(args.blocks), finetune=protocol == "finetune"
    )
    fit = replace(FitConfig(), steps=args.steps, batch_size=args.batch_size)
    if args.lr is not None:
        fit = replace(fit, lr=args.lr)
    options = ChangeOptions(
        model=model,
        fit=fit,
        seeds=tuple(args.seeds),
        val_cities=args.val_cities,
        stride=args.stride,
        train_cities=args.train_cities,
        test_cities=args.test_cities,
        download=args.download,
    )
    return evaluate_change(
        encoder,
        args.data_root,
        options,
        figures_dir=out / "figures",
        model_info=info,
        progress=progress,
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score an encoder on EuroSAT, BigEarthNet or OSCD, with baselines, to a report",
        description="Evaluate an encoder on a benchmark read from a local root in torchgeo's "
        "on-disk layout (bands matched by name, the model's own normalisation): kNN, linear or "
        "fine-tuned classification (EuroSAT, BigEarthNet), or OSCD change detection with a "
        "Siamese or temporal encoder and a light decoder, scored over whole test cities. "
        "Baselines run in the same run on the same split. Writes report.json, report.md and "
        "figures to --out; --compare prints reports side by side.",
    )
    parser.add_argument("--benchmark", choices=BENCHMARK_NAMES, help="benchmark to run")
    parser.add_argument(
        "--protocol",
        choices=sorted(set(CLASSIFICATION_PROTOCOLS + CHANGE_PROTOCOLS)),
        help="classification: knn, linear (default) or finetune; oscd: frozen (default) or "
        "finetune (the encoder trains too)",
    )
    parser.add_argument(
        "--model", help="bundle, .ckpt or official .pth; or a registry name with --random-init"
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="the model's architecture and normalisation with random weights (a baseline)",
    )
    parser.add_argument("--data-root", help="the benchmark's root folder (torchgeo's layout)")
    parser.add_argument("--out", help="report folder (report.json, report.md, figures/)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="seeds; metrics are mean ± std"
    )
    parser.add_argument(
        "--download", action="store_true", help="let torchgeo download the benchmark"
    )
    parser.add_argument(
        "--date",
        help="nominal acquisition date (YYYY-MM-DD) for undated benchmarks and temporal models",
    )
    parser.add_argument(
        "--cache-dir", help="where frozen features are cached (default: <out>/features)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="samples or windows per step")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--epochs", type=int, help="epochs of --protocol finetune (default 10)")
    parser.add_argument(
        "--lr", type=float, help="peak learning rate of fine-tuning or of the change decoder"
    )
    change = parser.add_argument_group("change detection (oscd)")
    change.add_argument(
        "--change-mode",
        choices=("siamese", "temporal"),
        default="siamese",
        help="siamese: each date alone; temporal: both dates as one series with their times",
    )
    change.add_argument(
        "--blocks", help="encoder blocks to fuse, e.g. -3,-1 (default: the middle and last)"
    )
    change.add_argument("--steps", type=int, default=600, help="training steps of the decoder")
    change.add_argument("--stride", type=int, help="sliding-window step at test (default: half)")
    change.add_argument("--train-cities", nargs="+", help="default: the root's train.txt")
    change.add_argument("--test-cities", nargs="+", help="default: the root's test.txt")
    change.add_argument("--val-cities", nargs="+", help="training cities that choose the threshold")
    parser.add_argument(
        "--compare", nargs="+", metavar="REPORT", help="print these report.json side by side"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
