"""`memetui train-sae [INDEX | --embeddings FILE.npy] --latents N --k K`: train a top-k SAE."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_device_argument, add_index_argument, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `memetui train-sae`."""
    add_index_argument(parser)
    parser.add_argument("--embeddings", type=Path, default=None, metavar="FILE.npy",
                        help="train on an [N, d] .npy array instead of an index")
    parser.add_argument("--latents", type=positive_int, default=16384, help="number of latents (default 16384)")
    parser.add_argument("--k", type=positive_int, default=32, help="active latents per sample (default 32)")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the training split (default 1)")
    parser.add_argument("--batch", type=positive_int, default=1024, help="batch size (default 1024)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: see README, SAE training)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--name", default=None, help="checkpoint name (default sae-N-kK)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default INDEX/sae)")
    parser.add_argument("--no-labels", action="store_true", help="skip automatic text labels")
    parser.add_argument("--remote-sample", type=positive_int, default=1_000_000, metavar="N",
                        help="an index whose vectors are only in Milvus (no local memmap): train on an evenly "
                             "spread sample of at most N live rows streamed from it (default 1,000,000)")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Train, save NAME.safetensors/.json/.metrics.json/.curve.png, print the validation metrics."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..errors import UsageError
    from ..paths import resolve_index
    from ..sae.checkpoint import check_name, check_output_folder, clean_stale_tmp
    from ..sae.train import TrainConfig, open_training_data, save_result, train

    cfg = TrainConfig(n_latents=args.latents, k=args.k, epochs=args.epochs, batch_size=args.batch, lr=args.lr,
                      seed=args.seed, device=args.device)
    if args.embeddings is not None:
        if args.index is not None:
            raise UsageError("give either INDEX or --embeddings, not both")
        data = open_training_data(args.embeddings, cfg.val_fraction)
        out = args.out or args.embeddings.expanduser().resolve().parent
    else:
        data = open_training_data(resolve_index(args.index), cfg.val_fraction, remote_sample=args.remote_sample)
        out = args.out or data.store.sae_dir
    name = check_name(args.name or f"sae-{args.latents}-k{args.k}")
    check_output_folder(Path(out).expanduser())  # before training: `--out FILE` fails now, not after an hour
    clean_stale_tmp(Path(out).expanduser())
    print(f"training {name} on {data.source}: {len(data.train_rows)} train / {len(data.val_rows)} validation rows, "
          f"d={data.dim}, latents={cfg.n_latents}, k={cfg.k}, lr={_rates(cfg)}")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("train-sae", total=None, info="")

        def on_step(p) -> None:
            info = f"loss {p.loss:.4f} fvu {p.fvu:.4f} dead {p.dead_fraction:.2%} {p.samples_per_s:,.0f}/s"
            if p.val is not None:
                info += f" | val fvu {p.val.fvu:.4f} dead {p.val.dead_fraction:.2%}"
            bar.update(task, completed=p.step, total=p.total_steps, info=info)

        result = train(data, cfg, on_step)
    result.sae.meta.setdefault("metrics", {})["dead_train_rows"] = result.final.train.dead_fraction  # for `info`
    if data.store is not None and not args.no_labels:
        _label(result.sae, data)
    path = save_result(result, out, name)
    m = result.metrics
    print(f"validation: FVU {m.fvu:.4f}, L0 {m.l0:.1f}, dead {m.dead_fraction:.2%}, cosine {m.mean_cosine:.4f} "
          f"({m.samples} rows); lr {result.sae.meta['training']['lr_used']:.2e}; {result.samples_per_s:,.0f} samples/s ({result.matmul} encoder, "
          f"{'fused' if result.fused_adam else 'foreach'} Adam)")
    final = result.final
    print(f"dead latents (fire on no row): {final.train.dead_fraction:.2%} of the {final.train.samples:,} training rows, "
          f"{final.val.dead_fraction:.2%} of the {final.val.samples:,} validation rows, {final.dead_all_rows:.2%} of all "
          f"{final.val.samples + final.train.samples:,} rows; {result.dead_window:.2%} silent in the last "
          f"{result.sae.meta['metrics']['dead_window_samples']:,} training samples; train FVU {final.train.fvu:.4f}")
    print(f"saved {path}.safetensors, {path}.json, {path}.metrics.json, {path}.curve.png")
    return 0


def _rates(cfg) -> str:
    """The learning rate, or the candidates the search tries first."""
    rates = cfg.lr_candidates()
    return f"{rates[0]:.2e}" if len(rates) == 1 else "search " + " / ".join(f"{r:.2e}" for r in rates)


def _label(sae, data) -> None:
    """Label features with the index's CLIP text tower and their exemplars' words (searched among the
    training data's rows), when the model loads."""
    from ..embed import Embedder
    from ..errors import MemetuiError
    from ..sae.labels import label_sae

    try:
        store = data.store
        embedder = Embedder(store.model.name, store.model.pretrained)
        label_sae(sae, embedder, store=store, embeddings=data.array, rows=data.all_rows)
    except MemetuiError as exc:
        print(f"labels skipped: {exc}")
