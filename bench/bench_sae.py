"""SAE training across the bench family: memetui's trainer vs the plain optimised reference, same run.

For each member of `bench/sae_family.py` (synthetic CLIP-like generators + the sample index's real
embeddings) it trains memetui's SAE with its defaults for one epoch and, interleaved step by step
with it, the reference (`bench/sae_reference.py`) at each learning rate of a sweep, all with the
same torch thread count. Per member: samples/s by wall clock and by the process's CPU time (the
figure that survives a shared, loaded machine), validation FVU and dead latents of both, the
reference's best learning rate, the speed ratios, and memetui's per-stage step profile. Everything is
evaluated by the same code (fp32 validation pass).

    nice -n 10 python bench/bench_sae.py               # the whole family, 1 thread each
    python bench/bench_sae.py --members task --scale 0.25 --ref-lrs 2e-3   # a quick look
    python bench/bench_sae.py --members sample-index --study-epochs 5      # train vs held-out, 1..5 epochs
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sae_family import FAMILY, Member  # noqa: E402
from sae_reference import Reference  # noqa: E402

from memetui.sae.train import TrainConfig, Trainer, evaluate, final_metrics, open_training_data, train  # noqa: E402

REF_LRS = (1e-3, 3e-3, 1e-2)


def start_together(data, cfg: TrainConfig, member: Member, ref_lrs) -> tuple[Trainer, list[Reference]]:
    """Ours and the reference at each rate, stepped together until ours is done (one step of ours, then
    one of each reference)."""
    trainer = Trainer(data, cfg)
    refs = [Reference(data, member.n_latents, member.k, member.batch, lr, trainer.sae.b_pre.cpu(), trainer.sae.scale)
            for lr in ref_lrs]
    while not trainer.done:
        trainer.step()
        for ref in refs:
            ref.step()
    return trainer, refs


def warm_up(data, member: Member) -> None:
    """Two steps of each side on throwaway copies before the timed runs: the process's one-time costs (oneDNN
    kernels generated for these shapes, the sparse CSR paths, the allocator's first pages) would otherwise
    fall on whichever side steps first (ours: +26 ms on the sample index's 33-step run)."""
    cfg = TrainConfig(n_latents=member.n_latents, k=member.k, batch_size=member.batch, max_steps=2, eval_every=10**9)
    start_together(data, cfg, member, [1e-3])


def interleaved_run(data, cfg: TrainConfig, member: Member, ref_lrs):
    """One training run of ours and of the reference at each rate, interleaved step by step."""
    trainer, refs = start_together(data, cfg, member, ref_lrs)
    return trainer.finish(), [ref.result() for ref in refs]


def run_member(member: Member, scale: float, ref_lrs, epochs: float = 1.0, min_seconds: float = 3.0,
               max_repeats: int = 9) -> dict:
    """Train ours and the reference sweep on one member, interleaved step by step; returns the row of figures.

    Each step of ours is followed by one step of every reference run, so load on a shared machine
    falls on both alike; each side times only its own steps. A member whose run is short (the sample
    index: 33 steps, 0.3 s) is trained again from scratch until ours has stepped for `min_seconds`;
    speeds are the medians over those runs (the runs are seeded: the models are identical).
    """
    data = open_training_data(member.make(scale))
    warm_up(data, member)
    cfg = TrainConfig(n_latents=member.n_latents, k=member.k, batch_size=member.batch, epochs=epochs, eval_every=10**9)
    runs, stepped = [], 0.0
    while not runs or (stepped < min_seconds and len(runs) < max_repeats):
        runs.append(interleaved_run(data, cfg, member, ref_lrs))
        stepped += sum(runs[-1][0].profile_ms.values()) * runs[-1][0].sae.meta["training"]["steps"] / 1000  # ms/step
    ours, results = runs[-1]
    steps = ours.sae.meta["training"]["steps"]
    ours_val = evaluate(ours.sae, data)
    search = ours.sae.meta["training"]["lr_search"]
    median = lambda values: float(np.median(values))  # noqa: E731
    row = {"member": member.name, "data": member.describe(), "rows": int(data.array.shape[0]), "steps": steps,
           "runs": len(runs),
           "ours": {"samples_per_s": median([o.samples_per_s for o, _ in runs]),
                    "cpu_samples_per_s": median([o.cpu_samples_per_s for o, _ in runs]),
                    "val_fvu": ours_val.fvu, "train_fvu": ours.final.train.fvu,
                    "dead_val": ours_val.dead_fraction, "dead_all_rows": ours.final.dead_all_rows,
                    "dead_window": ours.dead_window, "lr": ours.sae.meta["training"]["lr_used"], "lr_search": search},
           "profile_ms": ours.profile_ms, "profile_cpu_ms": ours.profile_cpu_ms, "reference": []}
    for i, result in enumerate(results):
        m = evaluate(result.sae, data)
        row["reference"].append({"lr": result.lr, "samples_per_s": median([r[i].samples_per_s for _, r in runs]),
                                 "cpu_samples_per_s": median([r[i].cpu_samples_per_s for _, r in runs]),
                                 "val_fvu": m.fvu, "dead_val": m.dead_fraction, "sae": result.sae})
    finite = [r for r in row["reference"] if math.isfinite(r["val_fvu"])] or row["reference"]
    best = min(finite, key=lambda r: r["val_fvu"])
    best["dead_all_rows"] = final_metrics(best["sae"], data, matmul_dtype=torch.bfloat16).dead_all_rows
    for r in row["reference"]:
        r.pop("sae")
    row["best_ref"] = best
    b = row["reference"].index(best)

    def median_ratio(field: str, pick) -> float:
        """Ours over pick(the references' speeds), per run, then the median: a slow moment falls on both sides."""
        return median([getattr(o, field) / pick([getattr(r, field) for r in refs]) for o, refs in runs])

    row["speed_ratio"] = median_ratio("samples_per_s", lambda speeds: speeds[b])
    row["cpu_speed_ratio"] = median_ratio("cpu_samples_per_s", lambda speeds: speeds[b])
    row["speed_ratio_vs_fastest_ref"] = median_ratio("samples_per_s", max)
    row["cpu_speed_ratio_vs_fastest_ref"] = median_ratio("cpu_samples_per_s", max)
    return row


def print_row(row: dict) -> None:
    """One member: ours vs the reference at its best lr (wall and CPU samples/s), then the profile."""
    o, b = row["ours"], row["best_ref"]
    speed = min(row["cpu_speed_ratio_vs_fastest_ref"], row["speed_ratio_vs_fastest_ref"])
    # dead: over every row (a latent silent on all of them); the validation pass alone (10 % of the rows)
    # misses latents that fire on fewer rows than that and reads several times higher
    ok = speed >= 1.5 and o["val_fvu"] <= b["val_fvu"] and o["dead_all_rows"] < 0.01
    print(f"| {row['member']} | {o['samples_per_s']:,.0f} / {o['cpu_samples_per_s']:,.0f} | {o['val_fvu']:.4f} | "
          f"{o['dead_val']:.2%} / {o['dead_all_rows']:.2%} | {b['samples_per_s']:,.0f} / {b['cpu_samples_per_s']:,.0f} | "
          f"{b['val_fvu']:.4f} | {b['dead_val']:.2%} / {b['dead_all_rows']:.2%} | {b['lr']:.0e} | "
          f"{row['speed_ratio']:.2f}× / {row['cpu_speed_ratio']:.2f}× | {'yes' if ok else 'NO'} |")
    sweep = ", ".join(f"{r['lr']:.0e}: {r['val_fvu']:.4f} ({r['samples_per_s']:,.0f}/s, {r['cpu_samples_per_s']:,.0f}/CPU-s)"
                      for r in row["reference"])
    search = o["lr_search"]
    chosen = (f"lr {o['lr']:.1e} of " + "/".join(f"{c:.1e}" for c in search["candidates"]) +
              f" after {search['steps']} steps") if search else f"lr {o['lr']:.1e}"
    runs = f" × {row['runs']} runs (median speeds)" if row.get("runs", 1) > 1 else ""
    print(f"    {row['data']}; {row['steps']} steps{runs}; ours {chosen}, train FVU {o['train_fvu']:.4f}, "
          f"dead window {o['dead_window']:.2%}; reference sweep {sweep}")
    for name, key in (("wall", "profile_ms"), ("CPU", "profile_cpu_ms")):
        profile = ", ".join(f"{k} {v:.1f}" for k, v in row[key].items())
        print(f"    profile {name} ms/step: {profile} (sum {sum(row[key].values()):.1f})", flush=True)


def epoch_study(member: Member, epochs: int, scale: float) -> list[dict]:
    """Train vs held-out FVU and dead latents after 1..epochs epochs (each a fresh run with its schedule)."""
    data = open_training_data(member.make(scale))
    out = []
    for e in range(1, epochs + 1):
        r = train(data, TrainConfig(n_latents=member.n_latents, k=member.k, batch_size=member.batch, epochs=e,
                                    eval_every=10**9))
        out.append({"epochs": e, "train_fvu": r.final.train.fvu, "val_fvu": r.final.val.fvu,
                    "dead_val": r.final.val.dead_fraction, "dead_train": r.final.train.dead_fraction,
                    "dead_all_rows": r.final.dead_all_rows, "dead_window": r.dead_window})
        print(f"| {e} | {r.final.train.fvu:.4f} | {r.final.val.fvu:.4f} | {r.final.train.fvu / r.final.val.fvu:.3f} | "
              f"{r.final.val.dead_fraction:.2%} | {r.final.train.dead_fraction:.2%} | {r.final.dead_all_rows:.2%} | "
              f"{r.dead_window:.2%} |", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default=",".join(m.name for m in FAMILY), help="comma-separated member names")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each member's rows (quick runs)")
    parser.add_argument("--ref-lrs", default=",".join(map(str, REF_LRS)), help="reference learning-rate sweep")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, the same for ours and the reference (1: no waits on a busy second core)")
    parser.add_argument("--study-epochs", type=int, default=0, help="also train 1..E epochs on each member")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.members.split(",")
    members = [m for m in FAMILY if m.name in names]
    ref_lrs = [float(v) for v in args.ref_lrs.split(",") if v]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; scale {args.scale}; reference lrs {ref_lrs}")
    print("| member | ours samples/s (wall / CPU) | ours val FVU | ours dead val / all rows | ref samples/s (wall / CPU) | "
          "ref val FVU | ref dead val / all rows | ref best lr | speed (wall / CPU) | meets |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows, t0 = [], time.perf_counter()
    for member in members:
        if ref_lrs:
            rows.append(run_member(member, args.scale, ref_lrs))
            print_row(rows[-1])
    study = {}
    if args.study_epochs:
        print("| epochs | train FVU | val FVU | train/val | dead (val pass) | dead (train pass) | dead (all rows) | "
              "dead (window) |\n|---|---|---|---|---|---|---|---|")
        for member in members:
            study[member.name] = epoch_study(member, args.study_epochs, args.scale)
    print(f"bench took {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "study": study}, indent=1))


if __name__ == "__main__":
    main()
