"""Train lenscope's bundled demo model, reproducibly, on this repo's synthetic corpus.

    python training/train_demo_model.py --out models/demo

Fixed seeds; loss logged to OUT/train_log.jsonl. On Linux, run it with Debian's
OpenBLAS preloaded (see `lenscope doctor`): the reference BLAS in the mlx-cpu wheel
is ~20x slower for training.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten
from mlx_lm.models import llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lenscope.lab import episodes

EOS = "<|endoftext|>"
SPECIALS = [EOS, "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}\n"
    "{% else %}<|assistant|>{{ m['content'] }}<|endoftext|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

CONFIG = {
    "model_type": "llama",
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "intermediate_size": 704,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-5,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}


def train_tokenizer(docs: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    return tok


def pack(tok: Tokenizer, docs: list[str], seq_len: int) -> np.ndarray:
    eos = tok.token_to_id(EOS)
    ids: list[int] = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eos)
    n = (len(ids) - 1) // seq_len
    arr = np.array(ids[: n * seq_len + 1], dtype=np.int32)
    x = arr[:-1].reshape(n, seq_len)
    y = arr[1:].reshape(n, seq_len)
    return np.stack([x, y], axis=1)


def save(out: Path, model: nn.Module, tok: Tokenizer) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": EOS,
        "unk_token": None,
        "pad_token": EOS,
        "model_max_length": CONFIG["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps({"eos_token": EOS, "pad_token": EOS}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--docs", type=int, default=120_000)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--minutes", type=float, default=40.0, help="stop early at this wall-clock budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recall-share", type=float, default=None,
                    help="phase 2: share of recall episodes (with distractors); default: the phase-1 mixture")
    ap.add_argument("--recall-style", choices=["distractors", "colorless"], default="distractors",
                    help="phase 2: 0-1 distractor facts; phase 3: one fact, filler without colours")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from this model folder (its weights and tokenizer) instead of from scratch")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    docs = episodes.training_documents(args.seed, args.docs, args.recall_share, args.recall_style)
    held_out = episodes.training_documents(args.seed + 1, 2000, args.recall_share, args.recall_style)
    tok = Tokenizer.from_file(str(args.init / "tokenizer.json")) if args.init else \
        train_tokenizer(docs, CONFIG["vocab_size"])
    data = pack(tok, docs, args.seq_len)
    val = pack(tok, [d for d in held_out], args.seq_len)
    print(f"corpus: {len(docs)} docs, {data.size // 2} tokens; held-out {val.size // 2} tokens", flush=True)

    model = llama.Model(llama.ModelArgs(**CONFIG))
    if args.init:
        model.load_weights(str(args.init / "model.safetensors"))
    mx.eval(model.parameters())
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    print(f"parameters: {n_params}", flush=True)

    schedule = optim.join_schedules(
        [optim.linear_schedule(0.0, args.lr, 50), optim.cosine_decay(args.lr, max(1, args.steps - 50), args.lr * 0.05)],
        [50],
    )
    opt = optim.AdamW(learning_rate=schedule, weight_decay=0.05)

    def loss_fn(m, xy):
        logits = m(xy[:, 0])
        return nn.losses.cross_entropy(logits, xy[:, 1], reduction="mean")

    grad_fn = nn.value_and_grad(model, loss_fn)

    def train_step(xy):
        loss, grads = grad_fn(model, xy)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        opt.update(model, grads)
        return loss

    def eval_loss() -> float:
        losses = [loss_fn(model, mx.array(val[i : i + 32])).item() for i in range(0, len(val), 32)]
        return float(np.mean(losses))

    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train_log.jsonl", "a" if args.init else "w")  # noqa: SIM115 (the run's log)
    log.write(json.dumps({"phase": vars(args) | {"out": str(args.out), "init": str(args.init)}}) + "\n")
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    tokens_seen = 0
    step = 0
    for step in range(1, args.steps + 1):
        batch = mx.array(data[rng.integers(0, len(data), args.batch)])
        loss = train_step(batch)
        mx.eval(model.parameters(), opt.state, loss)
        tokens_seen += args.batch * args.seq_len
        elapsed = time.perf_counter() - t0
        if step % 25 == 0 or step == 1:
            rec = {"step": step, "loss": round(loss.item(), 4), "tokens": tokens_seen,
                   "elapsed_s": round(elapsed, 1), "tokens_per_s": round(tokens_seen / elapsed, 1)}
            if step % 250 == 0:
                rec["held_out_loss"] = round(eval_loss(), 4)
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if elapsed > args.minutes * 60:
            print(f"time budget reached at step {step}", flush=True)
            break
    final = {"step": step, "train_loss": round(loss.item(), 4), "held_out_loss": round(eval_loss(), 4),
             "tokens_seen": tokens_seen, "elapsed_s": round(time.perf_counter() - t0, 1),
             "parameters": n_params, "log_vocab": round(math.log(CONFIG["vocab_size"]), 4)}
    print(json.dumps(final), flush=True)
    log.write(json.dumps({"final": final}) + "\n")
    log.close()
    save(args.out, model, tok)


if __name__ == "__main__":
    main()
