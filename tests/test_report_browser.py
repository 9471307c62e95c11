"""The HTML report in a real browser (headless Chromium, Debian's package): the script runs
without a console error, focusing a token fills the tooltip and colours the text, and a
1280x800 screenshot is not blank. Skipped where no Chromium is installed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,800"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from lenscope.cli.main import main

    out = tmp_path_factory.mktemp("browser") / "out"
    try:
        main(["run", str(EXAMPLES / "recall.toml"), "--out", str(out)])
    except SystemExit as exc:
        assert not exc.code
    return out / "report.html"


def chromium(*args, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # the OpenBLAS preload kills its GPU process
    return subprocess.run([CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env, check=False)


def test_focused_token_fills_the_tooltip_without_console_errors(report, tmp_path):
    proc = chromium("--dump-dom", f"{report.as_uri()}#t=0-1-0", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]
    assert not errors, errors
    dom = proc.stdout
    tip = dom[dom.index('id="tip"'):][:600]
    assert "display: block" in tip and "KL from baseline" in tip and "attention on marks" in tip
    assert "background: rgb(" in dom  # the prompt coloured by that token's attention


def test_layer_and_head_selectors_change_what_the_text_shows(tmp_path):
    """With report_heads, picking a layer and head (here through the URL) recolours the text."""
    from lenscope.cli.main import main

    exp = tmp_path / "e.toml"
    text = (EXAMPLES / "recall.toml").read_text().replace("lenses/focus.toml", str(EXAMPLES / "lenses/focus.toml"))
    exp.write_text(text.replace("capture_attention = true", "capture_attention = true\nreport_heads = true"))
    try:
        main(["run", str(exp), "--out", str(tmp_path / "out")])
    except SystemExit as exc:
        assert not exc.code
    page = (tmp_path / "out" / "report.html").as_uri()
    colours = []
    for pick in ("", "&layer=2&head=3", "&src=rollout"):
        proc = chromium("--dump-dom", f"{page}#t=0-1-0{pick}", cwd=tmp_path)
        assert "Uncaught" not in proc.stderr
        prompt = proc.stdout[proc.stdout.index('class="prompt"'):].split("</div>")[0]
        colours.append(prompt.count("background: rgb(") and prompt)
    assert all(colours) and len(set(colours)) == 3


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", f"{report.as_uri()}#t=0-1-0", cwd=tmp_path)
    assert shot.is_file()
    assert shot.stat().st_size > 30_000  # a blank 1280x800 page compresses to a few kB
