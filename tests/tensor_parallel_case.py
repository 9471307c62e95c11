"""One batch of every lens kind (and the head-picking settings) on the demo model, with
logits kept and every row's attention and residual stream captured: what
test_tensor_parallel.py compares between one process and the model split over two.

    mlx.launch -n 2 --backend ring -- python tests/tensor_parallel_case.py OUT.npz

runs it split (`--shard tensor`'s loading); rank 0 writes OUT.npz. `compute(engine)` is
the same work for an engine in this process.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lenscope.core.engine import Engine, Request
from lenscope.lenses.spec import parse_inline

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_lenses import CASES, PROMPT

# picking heads by their global index: heads 1 and 6 sit on different ranks of two
HEADS = ["emphasis:strength=4,heads=1|6", "emphasis:strength=4,auto_heads=3", "hold:ceiling=8,heads=2|5",
         "hold:ceiling=8", "decay:strength=2,heads=0|7", "head-scale:scale=0,heads=3|4",
         "blur:sigma=3,axis=cols,target=mlp.down_proj",  # along the axis down_proj is split on
         "blur:sigma=3,axis=rows,target=self_attn.q_proj", "noise:scale=1,target=self_attn.o_proj",
         "svd-remove:k=4,target=self_attn.v_proj"]
SAMPLED = ["temperature:start=2,end=0.5", "explore:exclude_top=1", "bias:words=happy,value=4", "noise:scale=0.5"]
SPECS = [active for _, active in CASES.values() if active] + HEADS


def compute(engine: Engine) -> dict[str, np.ndarray]:
    ids = engine.encode(PROMPT)
    marks = engine.tokens.marks_from_text(PROMPT, ids, ["green"])
    out: dict[str, np.ndarray] = {}
    for name, specs, temperature in (("greedy", SPECS, 0.0), ("sampled", SAMPLED, 0.9)):
        variants = [parse_inline(s) for s in specs]
        run = engine.compare(Request(PROMPT, variants, marks, max_tokens=8, temperature=temperature, seed=3,
                                     stop_at_eos=False, keep_logits=True))
        result = run.run()
        out[f"{name}_tokens"] = np.array([row.token_ids for row in result.rows])
        out[f"{name}_logits"] = np.stack(run.logits)  # (steps, rows, vocab)
        out[f"{name}_marks"] = np.array([row.attention_to_marks for row in result.rows])
    rows = [(ids + list(map(int, tokens)), v) for tokens, v in
            zip(out["greedy_tokens"][1:], [parse_inline(s) for s in SPECS])]
    captured = engine.inspect_rows(rows, prompt_len=len(ids), marks=marks)
    for r, (attention, hidden) in enumerate(captured):
        out[f"attention_{r}"] = attention
        out[f"hidden_{r}"] = hidden
    return out


def main() -> None:
    from lenscope.cli.common import load_engine

    engine, _ = load_engine(argparse.Namespace(model=None, trust_remote_code=False, precision="auto", shard="tensor"))
    out = compute(engine)
    from lenscope.batch.distributed import world

    if world().leader:
        np.savez(sys.argv[1], **out)


if __name__ == "__main__":
    main()
