"""What a run refuses or warns about before it starts: foreign code in model folders, run budgets,
warnings said before running, hook state that stays with its own comparison, and
model-dependent lens checks."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from lenscope.core import budget
from lenscope.core.engine import Request
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse
from lenscope.models import DEMO_MODEL_DIR

PROMPT = "the key is blue. one day, tom went to the park. question: what color is the key? answer: the key is"


def _evil_model(tmp_path: Path, where: str) -> tuple[Path, Path]:
    """A copy of the demo model whose config names Python of its own, and the file that
    Python would create if it ever ran."""
    folder = tmp_path / "evil"
    shutil.copytree(DEMO_MODEL_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    canary = tmp_path / "EVIL_RAN"
    (folder / "evil_tok.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n"
                                        "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    cfg = json.loads((folder / where).read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["evil_tok.EvilTokenizer", "evil_tok.EvilTokenizer"]}
    cfg["tokenizer_class"] = "EvilTokenizer"
    (folder / where).write_text(json.dumps(cfg))
    return folder, canary


@pytest.mark.parametrize("where", ["tokenizer_config.json", "config.json"])
def test_model_folder_code_is_refused_without_the_flag(tmp_path, run_cli, where, monkeypatch):
    folder, canary = _evil_model(tmp_path, where)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nothing may ask "[y/N]" either
    code, out, err = run_cli("generate", "--model", str(folder), "--prompt", "hi", "--max-tokens", "1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--trust-remote-code" in err and where in err
    assert out == "" and not canary.exists()


def test_patch_source_model_with_code_is_refused(tmp_path, run_cli):
    folder, canary = _evil_model(tmp_path, "tokenizer_config.json")
    code, _, err = run_cli("generate", "--prompt", PROMPT, "--max-tokens", "1",
                           "--lens", f"patch:source=the key is red.,model={folder}")
    assert code == 2 and "--trust-remote-code" in err and not canary.exists()


def test_too_many_rows_are_refused_before_running(engine):
    variants = parse("identity") * budget.MAX_ROWS
    with pytest.raises(BadInput, match="more than one comparison holds"):
        engine.compare(Request(PROMPT, variants, max_tokens=2))


def test_memory_estimate_refuses_what_cannot_fit(engine):
    sizes = budget.model_sizes(engine.model)
    need = budget.comparison_bytes(sizes, 9, 30, 8, 512)
    # the estimate grows with every dimension it claims to count
    assert budget.comparison_bytes(sizes, 18, 30, 8, 512) > need
    assert budget.comparison_bytes(sizes, 9, 60, 8, 512) > need
    assert budget.comparison_bytes(sizes, 9, 30, 80, 512) > need
    with pytest.raises(BadInput, match=r"need about .* is available"):
        budget.check_comparison(engine.model, 9, 30, 8, 512, available=need)
    assert budget.check_comparison(engine.model, 9, 30, 8, 512, available=4 * need) == []


def test_prompt_past_the_context_warns(engine):
    long_prompt = "one day, tom went to the park. " * 80
    run = engine.compare(Request(long_prompt, [], max_tokens=1))
    assert any("context of 512 tokens" in w for w in run.warnings)
    assert engine.compare(Request(PROMPT, [], max_tokens=1)).warnings == []


def test_capture_limit_is_checked_before_generating(run_cli, monkeypatch):
    import lenscope.core.engine
    from lenscope.core.comparison import Comparison

    calls = []
    monkeypatch.setattr(Comparison, "run", lambda self, *a: calls.append(1))
    monkeypatch.setattr(lenscope.core.engine, "CAPTURE_MAX_BYTES", 1 << 16)
    code, _, err = run_cli("generate", "--prompt", PROMPT, "--max-tokens", "4", "--capture-attention")
    assert code == 2 and "attention capture" in err and calls == []


def test_lens_that_needs_marks_warns_when_nothing_is_marked(engine, run_cli):
    run = engine.compare(Request(PROMPT, parse("emphasis:strength=2"), max_tokens=1))
    assert any("nothing is marked" in w and "emphasis" in w for w in run.warnings)
    marked = engine.compare(Request(PROMPT, parse("emphasis:strength=2"), marks=[3], max_tokens=1))
    assert marked.warnings == []
    code, _, err = run_cli("generate", "--prompt", PROMPT, "--max-tokens", "1", "--lens", "emphasis")
    assert code == 0 and "warning: emphasis: nothing is marked" in err


def test_interleaved_comparisons_keep_their_own_lenses(engine):
    """A suspended steps() generator must not lend its lenses to another comparison."""
    blur = engine.compare(Request(PROMPT, parse("noise:scale=0.5"), max_tokens=6))
    plain = engine.compare(Request(PROMPT, parse("identity"), max_tokens=6))
    a, b = blur.steps(), plain.steps()
    for _ in range(6):  # alternate: each step of one runs while the other is suspended
        next(a, None)
        next(b, None)
    rows = plain.result.rows
    assert rows[1].token_ids == rows[0].token_ids
    assert all(kl is not None and kl < 1e-9 for kl in rows[1].kl_from_baseline)
    assert blur.result.rows[1].kl_from_baseline[0] > 1e-4  # the noise row did change


def test_auto_heads_beyond_the_model_is_refused(engine):
    with pytest.raises(BadInput, match="emphasis: auto_heads=64, the model has 8 heads"):
        engine.compare(Request(PROMPT, parse("emphasis:auto_heads=64"), marks=[3], max_tokens=1))


def test_rotate_in_a_degenerate_plane_is_refused(engine):
    with pytest.raises(BadInput, match="point the same way"):
        engine.compare(Request(PROMPT, parse("rotate:a=happy,b=happy"), max_tokens=1))


def test_attention_takes_one_lens(run_cli):
    code, _, err = run_cli("attention", "--prompt", PROMPT, "--lens", "identity", "--lens", "emphasis")
    assert code == 2 and "--lens given 2 times" in err


def test_tui_without_a_terminal_says_so(run_cli, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run_cli("tui")
    assert code == 2 and "needs a terminal" in err


def test_doctor_names_a_model_that_does_not_load(run_cli):
    code, out, err = run_cli("doctor", "--model", "/nonexistent/model")
    assert code == 2 and "/nonexistent/model" in err and len(err.strip().splitlines()) == 1
    assert "mlx" in out  # the rest of the report still prints


def test_a_lens_failing_mid_run_is_named(engine, monkeypatch):
    from lenscope.lenses.scale import Scale

    def boom(self, ctx, h):
        if ctx.step >= 2:  # fails while decoding, after the prompt went through
            raise RuntimeError("kaboom")
        return h

    monkeypatch.setattr(Scale, "residual", boom)
    run = engine.compare(Request(PROMPT, parse("scale:factor=2"), max_tokens=5))
    with pytest.raises(BadInput, match=r"lens 'scale:factor=2' failed: RuntimeError: kaboom"):
        run.run()
