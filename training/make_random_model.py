"""A random-weight mlx-lm llama of a chosen size with the demo tokenizer, for benchmarks
where matrix products (not Python) dominate a step:

    python training/make_random_model.py --out /tmp/llama-150m --hidden 1024 --layers 12
    lenscope bench --model /tmp/llama-150m
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.models import llama

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=16)
    args = ap.parse_args()
    config = {**json.loads((DEMO / "config.json").read_text()), "hidden_size": args.hidden,
              "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
              "num_key_value_heads": args.heads // 2, "intermediate_size": int(args.hidden * 8 / 3) // 64 * 64}
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs(**config))
    args.out.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(args.out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (args.out / "config.json").write_text(json.dumps(config, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(DEMO / f, args.out / f)
    print(f"{sum(v.size for v in weights.values()) / 1e6:.0f}M parameters -> {args.out}")


if __name__ == "__main__":
    main()
