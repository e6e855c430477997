"""Train the shipped demo CLIP from scratch on the sample corpus, on CPU (run once, by hand).

    python scripts/train_demo_clip.py            # the shipped model: fixed steps, seed 0, 2 threads

Model: the open_clip config models/memetui-demo-clip.json (see models/README.md).
Data: sample_index/images + captions.jsonl; trains on the 'train' split only, 'heldout' is for
evaluation. Images are decoded once into memory exactly as `memetui index` sees them
(memetui.image_files.load_image: alpha on white), resized on the shortest side and centre
cropped like open_clip's inference transform, kept as uint8 at a slightly larger size for crops.
Augmentation: random resized crops (no flips: flags, arrows and text are not mirror-symmetric),
light brightness/contrast/saturation jitter (no hue: colours are in the captions). Texts: a third
are query-like word views (one content word, one keyword or two words: a query is usually one
word), the rest keep the first phrase plus a random subset of the other keywords, sometimes
without the "emoji" suffix; a fifth are wrapped in a neutral template.
Training: multi-positive symmetric InfoNCE with open_clip's learnable temperature: a text is also a
positive for every image in the batch whose caption holds all its content words ("cat" for every
cat), with soft targets (text->image over those images, image->text over those texts), so images
sharing a word are not pushed apart. AdamW (no decay on biases, norms, embeddings), linear warmup
then cosine decay, fixed seed and step count (reproducible for the same thread count). Every
--eval-every steps the log gets held-out recall and the word figures of scripts/eval_demo_clip.py
(caption-word hit rate@10, concept precision@10) over all images. At the end the weights are saved
in fp16, loaded back the way memetui loads them (open_clip.create_model_and_transforms + its
inference preprocess) and evaluated: text->image recall@1/@10, each held-out caption retrieving its
image among all held-out images, and each caption among all images, plus the word figures.
Writes NAME.safetensors and training.json into --out.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TEMPLATES = ["a picture of {}", "an image of {}", "a drawing of {}", "{} icon", "{} picture"]
EMOJI_SUFFIXES = (" 3d emoji", " emoji")
STOP_WORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
                        "its", "of", "on", "or", "the", "this", "that", "to", "with", "without"})
CONCEPT_WORDS = ROOT / "scripts" / "concept_words.txt"


def read_records(corpus: Path) -> list[dict]:
    """captions.jsonl records, in file order."""
    return [json.loads(line) for line in open(corpus / "captions.jsonl", encoding="utf-8") if line.strip()]


def load_base_images(corpus: Path, records: list[dict], size: int) -> torch.Tensor:
    """All images as uint8 [N, 3, size, size]: memetui's decoder, shortest side resize, centre crop."""
    from torchvision.transforms import CenterCrop, InterpolationMode, PILToTensor, Resize

    from memetui.image_files import load_image

    resize, crop, to_tensor = Resize(size, InterpolationMode.BICUBIC), CenterCrop(size), PILToTensor()
    out = torch.empty(len(records), 3, size, size, dtype=torch.uint8)
    for i, record in enumerate(records):
        out[i] = to_tensor(crop(resize(load_image(corpus / "images" / record["path"], max_side=2 * size))))
    return out


def content_words(text: str) -> list[str]:
    """Lower-case words of `text` (letters/digits) without stop words, in order."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS]


def word_view(caption: str, parts: list[str], rng: random.Random) -> str | None:
    """A short query-like view: one content word (p 0.5), one keyword (0.3) or two words (0.2)."""
    words = list(dict.fromkeys(content_words(caption)))
    r = rng.random()
    if words and r < 0.5:
        return rng.choice(words)
    if len(parts) > 1 and r < 0.8:
        return rng.choice(parts)
    if len(words) > 1:
        return " ".join(rng.sample(words, 2))
    return None


def augment_caption(caption: str, rng: random.Random, word_views: float = 0.35) -> str:
    """A random view of a caption: word-level (p `word_views`) or first phrase + random keywords, suffix drop."""
    parts = [p.strip() for p in caption.split(",") if p.strip()] or [caption]
    if rng.random() < word_views and (text := word_view(caption, parts, rng)):
        return text
    rest = [p for p in parts[1:] if rng.random() < 0.6]
    rng.shuffle(rest)
    text = ", ".join(parts[:1] + rest)
    if rng.random() < 0.25:
        for suffix in EMOJI_SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)]
                break
    return text


def template(text: str, rng: random.Random) -> str:
    """Wrap a text in a neutral template with p 0.2 (its words do not count as content)."""
    return rng.choice(TEMPLATES).format(text) if rng.random() < 0.2 else text


def positives(texts: list[str], captions: list[str]) -> torch.Tensor:
    """[T, I] mask: text t is a positive for image i when all its content words are words of caption i."""
    caption_words = [set(content_words(c)) for c in captions]
    vocab = {w: j for j, w in enumerate(sorted(set().union(*caption_words)))}
    have = torch.zeros(len(captions), len(vocab) + 1)  # last column: a word no caption holds
    for i, words in enumerate(caption_words):
        have[i, [vocab[w] for w in words]] = 1
    want = torch.zeros(len(texts), len(vocab) + 1)
    for t, text in enumerate(texts):
        want[t, [vocab.get(w, len(vocab)) for w in set(content_words(text))]] = 1
    need = want.sum(1, keepdim=True)
    return (((want @ have.T) == need) & (need > 0)).float().maximum(torch.eye(len(texts), len(captions)))


def multi_positive_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with soft targets: image logits [I, T], positive mask [T, I]."""
    text_to_image = -(mask / mask.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    image_to_text = -(mask.T / mask.T.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    return (text_to_image + image_to_text) / 2


def augment_images(batch: torch.Tensor, out: int, gen: torch.Generator) -> torch.Tensor:
    """Random resized crops (area 0.5–1, aspect 3/4–4/3) + light colour jitter -> float [B,3,out,out] in 0..1."""
    b = batch.shape[0]
    x = batch.float() / 255
    area = torch.empty(b).uniform_(0.5, 1.0, generator=gen)
    log_ratio = torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    theta[:, 0, 2] = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sx)
    theta[:, 1, 2] = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sy)
    grid = F.affine_grid(theta, [b, 3, out, out], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def jitter(strength: float) -> torch.Tensor:
        return 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * strength

    x = x * jitter(0.15)  # brightness
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = grey + (x - grey) * jitter(0.15)  # saturation
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * jitter(0.15)  # contrast
    return x.clamp(0, 1)


def lr_at(step: int, total: int, base: float, warmup: int, floor: float = 0.02) -> float:
    """Linear warmup then cosine decay to `floor * base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def recall(model, tokenizer, pixels: torch.Tensor, captions: list[str], batch: int = 256) -> dict:
    """Text->image recall@1/@10: caption i retrieves image i among all `pixels` (preprocessed)."""
    model.eval()
    img = torch.cat([F.normalize(model.encode_image(pixels[i : i + batch].float()), dim=-1)
                     for i in range(0, len(pixels), batch)])
    txt = torch.cat([F.normalize(model.encode_text(tokenizer(captions[i : i + batch])), dim=-1)
                     for i in range(0, len(captions), batch)])
    sims = txt @ img.T
    own = sims.diagonal().unsqueeze(1)
    rank = (sims > own).sum(dim=1)  # images scoring strictly higher than the right one
    n = len(captions)
    return {"n": n, "recall@1": round(float((rank < 1).float().mean()), 4),
            "recall@10": round(float((rank < 10).float().mean()), 4),
            "median_rank": int(rank.median()) + 1,
            "chance@1": round(1 / n, 5), "chance@10": round(min(1.0, 10 / n), 5)}


@torch.no_grad()
def word_figures(model, tokenizer, pixels: torch.Tensor, records: list[dict], batch: int = 256) -> dict:
    """Caption-word hit rate@10 and concept precision@10 over all `pixels` (eval_demo_clip's metrics)."""
    from eval_demo_clip import figures, heldout_words, read_words

    model.eval()
    hit_words, concepts = heldout_words(records), read_words(CONCEPT_WORDS)
    words = sorted(set(hit_words) | set(concepts))
    img = torch.cat([F.normalize(model.encode_image(pixels[i : i + batch].float()), dim=-1)
                     for i in range(0, len(pixels), batch)])
    txt = F.normalize(model.encode_text(tokenizer(words)), dim=-1)
    top = (txt @ img.T).topk(10, dim=1).indices.tolist()
    lower = [r["caption"].lower() for r in records]
    result = figures(hit_words, concepts, {w: [lower[i] for i in row] for w, row in zip(words, top)})
    result.pop("per_word")
    return result


def main() -> None:
    """Train, save fp16 safetensors, reload as memetui does, evaluate, write training.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "models" / "memetui-demo-clip.json",
                        help="open_clip model config; the model name is the file stem")
    parser.add_argument("--corpus", type=Path, default=ROOT / "sample_index")
    parser.add_argument("--out", type=Path, default=ROOT / "models")
    parser.add_argument("--steps", type=int, default=1100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--wd", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=500,
                        help="held-out recall + word figures every N steps (0: end only)")
    parser.add_argument("--word-views", type=float, default=0.35,
                        help="share of texts that are query-like word views (one word, one keyword, two words)")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from these fp16 safetensors weights (a previous run's output) instead of "
                             "a random initialisation; its training.json, when beside it, is recorded")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="quick comparisons only: schedule over this wall-clock budget instead of --steps "
                             "(not reproducible)")
    args = parser.parse_args()

    import open_clip
    from safetensors.torch import save_file

    wall_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    name = args.config.stem
    open_clip.add_model_config(args.config)
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    previous = None
    if args.init is not None:
        from safetensors.torch import load_file

        model.load_state_dict({k: v.float() for k, v in load_file(args.init).items()})
        beside = args.init.with_name("training.json")
        if beside.is_file():
            old = json.loads(beside.read_text())
            previous = {key: old.get(key) for key in ("command", "steps", "epochs", "train_seconds", "init")}
    tokenizer = open_clip.get_tokenizer(name)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    pp = model.visual.preprocess_cfg
    mean, std = torch.tensor(pp["mean"]).view(1, 3, 1, 1), torch.tensor(pp["std"]).view(1, 3, 1, 1)
    params = sum(p.numel() for p in model.parameters())

    records = read_records(args.corpus)
    captions = [r["caption"] for r in records]
    train = [i for i, r in enumerate(records) if r["split"] == "train"]
    held = [i for i, r in enumerate(records) if r["split"] == "heldout"]
    base = load_base_images(args.corpus, records, size + size // 8)
    print(f"{name}: {params / 1e6:.2f} M parameters; {len(train)} train / {len(held)} held-out images "
          f"(decoded in {time.time() - wall_start:.0f} s)", flush=True)

    def eval_pixels(idx: list[int]) -> torch.Tensor:  # cheap stand-in for the inference transform
        x = F.interpolate(base[idx].float() / 255, size=(size, size), mode="bicubic", antialias=True)
        return ((x.clamp(0, 1) - mean) / std).half()

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    step, log, order = 0, [], []
    train_start = time.time()
    model.train()
    total = args.steps

    def progress_steps() -> int:  # with --minutes: the step count the elapsed time fraction maps to
        return int(args.steps * (time.time() - train_start) / (args.minutes * 60)) if args.minutes else step

    while (progress_steps() if args.minutes else step) < total:
        if len(order) < args.batch:
            order = train[:]
            rng.shuffle(order)
        idx, order = order[: args.batch], order[args.batch :]
        lr = lr_at(progress_steps(), total, args.lr, args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = (augment_images(base[idx], size, gen) - mean) / std
        texts = [augment_caption(captions[i], rng, args.word_views) for i in idx]
        mask = positives(texts, [captions[i] for i in idx])
        tokens = tokenizer([template(t, rng) for t in texts])
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        loss = multi_positive_loss(model.logit_scale.exp() * img @ txt.T, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        done = (progress_steps() if args.minutes else step) >= total
        if step % 50 == 0 or done:
            entry = {"step": step, "loss": round(loss.item(), 4), "lr": round(lr, 7),
                     "temperature": round(1 / model.logit_scale.exp().item(), 4),
                     "seconds": round(time.time() - train_start)}
            if args.eval_every and (step % args.eval_every == 0 or done):
                entry["heldout"] = recall(model, tokenizer, eval_pixels(held), [captions[i] for i in held])
                entry["words"] = word_figures(model, tokenizer, eval_pixels(list(range(len(records)))), records)
                model.train()
            log.append(entry)
            print(json.dumps(entry), flush=True)
    train_seconds = time.time() - train_start

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{name}.safetensors"
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, weights, metadata={"format": "pt", "model": name, "dtype": "float16"})

    # Evaluate the saved file exactly as memetui loads it: open_clip's loader and inference transform.
    from memetui.image_files import load_image

    shipped, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(weights))
    pixels = torch.stack([preprocess(load_image(args.corpus / "images" / r["path"], max_side=2 * size))
                          for r in records]).half()
    heldout = recall(shipped, tokenizer, pixels[held], [captions[i] for i in held])
    full = recall(shipped, tokenizer, pixels, captions)
    words = word_figures(shipped, tokenizer, pixels, records)
    print(f"held-out text->image: {heldout}\nall images: {full}\nwords: {words}", flush=True)
    command = " ".join(["python", "scripts/train_demo_clip.py", *sys.argv[1:]])
    report = {
        "model": name, "config": json.loads(args.config.read_text()), "parameters": params,
        "weights": {"file": weights.name, "dtype": "float16", "bytes": weights.stat().st_size},
        "data": {"corpus": "sample_index", "train_images": len(train), "heldout_images": len(held)},
        "command": command, "seed": args.seed, "threads": args.threads,
        "torch": torch.__version__, "open_clip": open_clip.__version__,
        "hyperparameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                            if k not in ("config", "corpus", "out", "eval_every")}
        | {"optimizer": "AdamW betas (0.9, 0.98) eps 1e-6, no decay on biases/norms/embeddings",
           "schedule": "linear warmup, cosine to 2% of lr", "grad_clip": 1.0,
           "loss": "symmetric multi-positive InfoNCE (a text is also positive for every image whose caption "
                   "holds all its content words; soft targets), learnable temperature (logit scale <= 100)",
           "image_aug": "random resized crop area 0.5-1 aspect 3/4-4/3, brightness/saturation/contrast +-15%",
           "caption_aug": f"word view (p {args.word_views}: one content word 0.5, one keyword 0.3, two words 0.2), else "
                          "first phrase + random keywords (p 0.6 each), drop emoji suffix (p 0.25); "
                          "neutral template (p 0.2)"},
        "steps": step, "epochs": round(step * args.batch / len(train), 1),
        "init": {"file": str(args.init), "previous_training": previous} if args.init else None,
        "train_seconds": round(train_seconds), "total_seconds": round(time.time() - wall_start),
        "recall_heldout": heldout, "recall_all": full, "words_all": words, "log": log,
    }
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
