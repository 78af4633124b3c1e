"""``satmae export CKPT --out DIR``: write a model bundle from a checkpoint."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint and write a bundle (safetensors + config.json)."""
    from pathlib import Path

    from satmae.cli import CommandError
    from satmae.models import load_encoder, load_mae, save_bundle

    out = Path(args.out)
    occupied = out.is_file() or (out.is_dir() and any(out.iterdir()))
    if occupied and not args.overwrite:
        raise CommandError(f"{out} exists and is not empty; pass --overwrite to replace it")
    strict = not args.not_strict
    model = (
        load_encoder(args.checkpoint, strict=strict)
        if args.encoder_only
        else load_mae(args.checkpoint, strict=strict)
    )
    save_bundle(
        model, out, provenance={"exported_from": str(args.checkpoint)}, overwrite=args.overwrite
    )
    kind = "encoder" if args.encoder_only else "masked autoencoder"
    print(f"wrote the {kind} bundle {out} (from {args.checkpoint})")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``satmae export``."""
    parser = subparsers.add_parser(
        "export",
        help="write a model bundle (safetensors + config.json) from a checkpoint",
        description="Export a Lightning checkpoint of satmae pretrain (or any model file "
        "satmae.load_mae reads) to a bundle: model.safetensors and config.json with the "
        "architecture, normalisation and provenance.",
    )
    parser.add_argument("checkpoint", help="a .ckpt of satmae pretrain, a bundle or a .pth")
    parser.add_argument("--out", required=True, help="bundle folder, or a .safetensors file")
    parser.add_argument(
        "--encoder-only", action="store_true", help="write only the encoder (no decoder)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.add_argument(
        "--not-strict",
        action="store_true",
        help="skip weights that the checkpoint's config does not describe (with a warning) "
        "instead of refusing the checkpoint",
    )
    parser.set_defaults(func=run)
