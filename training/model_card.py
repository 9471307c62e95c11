"""Measure the bundled model and write its MODEL_CARD.md (run after training).

    python training/model_card.py --model models/demo
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import mlx.core as mx
from mlx import nn
from mlx.utils import tree_flatten

from lenscope import models
from lenscope.core.engine import Engine, Request
from lenscope.lab import (
    episodes,
    measure,
)

SAMPLE_PROMPTS = ["one day, tom went to the park.", "in the morning, lily was happy.", "anna had a little cat named"]


def prose_loss(engine: Engine, seed: int = 999, n: int = 200) -> float:
    """Mean next-token loss on freshly generated held-out stories (no episodes)."""
    rng = random.Random(seed)
    total, count = 0.0, 0
    for _ in range(n):
        ids = engine.encode(episodes.story(rng))
        logits = engine.model(mx.array([ids[:-1]]))
        loss = nn.losses.cross_entropy(logits[0], mx.array(ids[1:]), reduction="sum")
        total += loss.item()
        count += len(ids) - 1
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(models.DEMO_MODEL_DIR))
    ap.add_argument("--n", type=int, default=60, help="recall episodes per distance")
    args = ap.parse_args()
    out = Path(args.model)
    engine = Engine(models.load(args.model))
    config = json.loads((out / "config.json").read_text())
    n_params = sum(v.size for _, v in tree_flatten(engine.model.parameters()))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    finals = [x["final"] for x in log if "final" in x]
    phases = [x["phase"] for x in log if "phase" in x]
    final = {**finals[-1], "step": sum(f["step"] for f in finals),
             "tokens_seen": sum(f["tokens_seen"] for f in finals), "elapsed_s": sum(f["elapsed_s"] for f in finals)}
    prose = prose_loss(engine)
    rec = measure.recall(engine, ["emphasis:strength=2", "emphasis:strength=4"], n=args.n)
    samples = []
    for p in SAMPLE_PROMPTS:
        res = engine.compare(Request(p, max_tokens=40)).run()
        samples.append((p, res.rows[0].text))
    size_mb = (out / "model.safetensors").stat().st_size / 2**20

    lines = [
        "# lenscope-demo: the bundled model", "",
        "A small llama-architecture causal language model trained from scratch with MLX by",
        "`training/train_demo_model.py` so that lenscope runs, and its lens effects can be",
        "measured, with no network. It writes simple English stories; it is a test instrument,",
        "not a general model.", "",
        "## Data and licence", "",
        "Entirely synthetic, generated offline by `lab/episodes.py` (this repository, MIT licence);",
        "no third-party text. The mixture (seed 0): 50 % recall episodes (`the key is blue.` + 0–3",
        "filler sentences that name no colour + `question: what color is the key? answer: the key is",
        "blue.`), 30 % plain short stories, 20 % happy or sad stories (attribute episodes for",
        "steering). Recall is only taught at short distances with colour-free filler; evaluation",
        "filler names colours (`the red ball`), so the further the fact, the more colours compete",
        "with it: the gap `emphasis` on the marked fact is measured against.", "",
        "## Architecture and training", "",
        (f"- mlx-lm `llama`: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
        f"{config['num_attention_heads']} heads ({config['num_key_value_heads']} key/value heads), "
        f"MLP {config['intermediate_size']}, RoPE, tied embeddings, context {config['max_position_embeddings']}"),
        (f"- byte-level BPE tokenizer trained on the corpus, vocabulary {config['vocab_size']}; chat template "
        "`<|user|>…<|assistant|>`"),
        f"- parameters: {n_params:,} ({size_mb:.1f} MB float32 safetensors)",
        (f"- AdamW (weight decay 0.05), warmup 50 steps then cosine, batch 24 x 256 tokens: "
        f"{final['step']} steps, {final['tokens_seen']:,} tokens in {final['elapsed_s'] / 60:.1f} min "
        f"({final['tokens_seen'] / final['elapsed_s']:.0f} tokens/s on 2 CPU cores with OpenBLAS)"),
        "- reproduce: " + "; then ".join(
            "`python training/train_demo_model.py --out models/demo "
            + ("--init models/demo " if ph.get("init") not in (None, "None") else "")
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in ph.items()
                       if k in ("recall_share", "recall_style", "docs", "steps", "lr", "minutes", "seed")) + "`"
            for ph in phases) + " (with Debian's OpenBLAS preloaded), then `python training/model_card.py`",
        (f"- final train loss {final['train_loss']:.3f}, held-out loss {final['held_out_loss']:.3f} "
        f"(held-out corpus mixture, seed 1); held-out prose-only loss {prose:.3f} nats/token "
        f"(log vocab = {math.log(config['vocab_size']):.3f})"), "",
        "## Recall curve (measured)", "",
        f"`lenscope measure recall --n {args.n}`: greedy answer after the cue is the fact's colour;",
        "the fact's tokens are marked. Attention on the fact (mean over layers and heads, at the",
        "answer step) in brackets.", "",
        "| filler sentences | tokens from fact to answer | " + " | ".join(rec["rows"]) + " |",
        "|---|---|" + "---|" * len(rec["rows"]),
    ]
    for row in rec["table"]:
        cells = " | ".join(f"{row['accuracy'][n]:.2f} [{row['attention_to_fact'][n]:.2f}]" for n in rec["rows"])
        lines.append(f"| {row['filler_sentences']} | {row['mean_token_distance']} | {cells} |")
    lines += ["", "## Sample generations (greedy, 40 tokens)", ""]
    for p, text in samples:
        lines.append(f"- **{p}**{text}")
    lines.append("")
    (out / "MODEL_CARD.md").write_text("\n".join(lines))
    (out / "measurements.json").write_text(json.dumps({"parameters": n_params, "prose_loss": prose,
                                                        "final": final, "recall": rec}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
