"""Sweep SAE shapes on one index: dead latents (train / validation / all rows), FVU and exemplar
coherence of SAE vs random directions with 95 % bootstrap intervals (memetui.steer.compare).

    python bench/sweep_sample_sae.py sample_index --configs 1024:16:100 512:8:200 ...

Each config is LATENTS:K:EPOCHS; SAEs are trained in memory and not saved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    """Train each config and print one line of figures (and a JSON line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index")
    parser.add_argument("--configs", nargs="+", required=True, help="LATENTS:K:EPOCHS")
    parser.add_argument("--directions", type=int, default=128)
    parser.add_argument("--revive", type=float, default=None,
                        help="TrainConfig.revive (raise b_enc of dead latents; default: the trainer's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from memetui.index.store import IndexStore
    from memetui.sae.train import TrainConfig, open_training_data, train
    from memetui.session import Session
    from memetui.steer.compare import CompareOptions, compare
    from memetui.steer.sae_directions import SAEDirections

    torch.set_num_threads(2)
    data = open_training_data(Path(args.index), 0.1)
    store = IndexStore.open(Path(args.index))
    for spec in args.configs:
        n, k, epochs = spec.split(":")
        revive = {} if args.revive is None else {"revive": args.revive}
        cfg = TrainConfig(n_latents=int(n), k=int(k), epochs=float(epochs), seed=args.seed, device="cpu", **revive)
        started = time.perf_counter()
        result = train(data, cfg)
        seconds = time.perf_counter() - started
        final = result.final
        session = Session(store, sae=SAEDirections.from_sae(result.sae))
        providers = {m: session.directions.provider(m) for m in ("sae", "random")}
        report = compare(store, providers, session.searcher.ann.search, None,
                         CompareOptions(args.directions, starts=1, per_start=1, bootstrap=1000, seed=args.seed))
        coh = {p.provider: p.coherence for p in report.providers}
        row = {"latents": int(n), "k": int(k), "epochs": float(epochs), "revive": cfg.revive,
               "seconds": round(seconds), "val_fvu": final.val.fvu, "train_fvu": final.train.fvu,
               "dead_train": final.train.dead_fraction, "dead_val": final.val.dead_fraction,
               "dead_all": final.dead_all_rows, "coh_sae": coh["sae"]._asdict(), "coh_random": coh["random"]._asdict(),
               "coh_rows": report.baseline_coherence._asdict()}
        s, r = coh["sae"], coh["random"]
        print(f"{spec} revive={cfg.revive}: {seconds:.0f}s FVU val {final.val.fvu:.3f} dead train "
              f"{final.train.dead_fraction:.1%} val {final.val.dead_fraction:.1%} all {final.dead_all_rows:.1%} | "
              f"coherence sae {s.mean:.3f} [{s.low:.3f},{s.high:.3f}] random {r.mean:.3f} [{r.low:.3f},{r.high:.3f}] "
              f"gap {s.mean - r.mean:+.3f}", flush=True)
        print("JSON " + json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
