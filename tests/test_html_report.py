"""The HTML report: one self-contained page that parses, holds every row's tokens and the
run's metadata, embeds exactly results.jsonl, and survives hostile text."""

import json
import re
from pathlib import Path

import html5lib
import pytest

from lenscope.reports.html import render

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from lenscope.cli.main import main

    out = tmp_path_factory.mktemp("rep") / "out"
    try:
        main(["run", str(EXAMPLES / "recall.toml"), "--out", str(out)])
    except SystemExit as exc:
        assert not exc.code
    return out


def parse(page: str):
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(page)


def test_page_parses_and_holds_every_token_and_the_metadata(run_dir):
    page = (run_dir / "report.html").read_text()
    doc = parse(page)
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    text = "".join(doc.itertext())
    for rec in results:
        for row in rec["rows"]:
            spans = doc.findall(f".//section[@data-c='0']//div[@data-r='{rec['rows'].index(row)}']//span")
            assert [s.text or "" for s in spans] == row["tokens"]
    for key in ("lenscope", "reproduce", "precision"):
        assert key in text
    assert "lenscope run" in text and results[0]["model"] in text
    embedded = json.loads(doc.find(".//script[@id='data']").text.replace("<\\/", "</"))
    assert embedded["results"] == results  # the page's data is results.jsonl, record for record
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing from the network


def test_hostile_text_stays_text():
    rec = {"comparison": "</script><b>x</b>", "model": "m|*`", "backend": "cpu", "precision": "native",
           "temperature": 0.0, "seed": 0, "prompt": "p", "prompt_tokens": ["<i>", "&"], "marked_token_indices": [0],
           "rows": [{"name": "a | b", "lens": None, "token_ids": [1], "tokens": ["</script>"], "text": "</script>",
                     "finite": True, "finished": True, "attention_to_marks": [], "first_divergence": None,
                     "kl_from_baseline": [None], "top_alternatives": [[]]}]}
    page = render([rec], {"reproduce": "lenscope run '<x>'"})
    doc = parse(page)
    assert doc.find(".//b") is None and doc.find(".//i") is None  # no markup from the data
    embedded = json.loads(doc.find(".//script[@id='data']").text.replace("<\\/", "</"))
    assert embedded["results"][0]["rows"][0]["tokens"] == ["</script>"]
    assert page.count("</script>") == 2  # the data script and the code script, nothing else


def test_markdown_tables_survive_pipes_stars_backticks_and_newlines():
    from lenscope.batch.experiment import markdown

    nasty = "a | b *c* `d`\nnew line _e_ [f](g) <h>"
    rec = {"comparison": nasty, "prompt": nasty, "model": "m", "temperature": 0.0, "seed": 0,
           "marked_token_indices": [], "rows": [{"name": nasty, "text": nasty, "first_divergence": None, "finite": True,
                                                 "kl_from_baseline": [], "attention_to_marks": []}]}
    md = markdown([rec])
    row = next(line for line in md.splitlines() if line.startswith("| a"))
    cells = [c for c in re.split(r"(?<!\\)\|", row)[1:-1]]
    assert len(cells) == 5  # no cell split by the | in the text
    assert "\\*c\\*" in row and "\\`d\\`" in row and "\\<h\\>" in row and "\n" not in row


def test_report_heads_keeps_every_layer_and_head_as_bytes():
    import base64

    import numpy as np

    from lenscope.reports.html import attention_row

    rng = np.random.default_rng(0)
    probs = np.tril(rng.random((2, 3, 4, 4)))
    probs /= probs.sum(-1, keepdims=True)
    row = attention_row("r", list("abcd"), probs, heads=True)
    d = row["detail"]
    raw = np.frombuffer(base64.b64decode(d["b64"]), dtype=np.uint8).reshape(2, 3, 10) / 255
    i, j = np.tril_indices(4)
    assert (d["layers"], d["heads"], d["t"]) == (2, 3, 4)
    assert np.allclose(raw, probs[:, :, i, j], atol=0.5 / 255)  # layer, head, then row by row
    assert np.allclose(row["mean"], probs.mean(axis=(0, 1)), atol=1e-4)
    assert "detail" not in attention_row("r", list("abcd"), probs)
