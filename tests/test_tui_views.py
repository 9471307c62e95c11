"""The views in the TUI, driven as a person would: run, open each tab, move, change mode,
run again with another lens, and check what each view computes against the views' own functions."""

import numpy as np
from textual.widgets import Input, TabbedContent
from tui_helpers import app, ready, run_and_wait

from lenscope.tui.compare.compare_panel import ComparePanel
from lenscope.tui.geometry.geometry_panel import GeometryPanel
from lenscope.tui.heads.head_map_panel import HeadMapPanel, HeadMapView
from lenscope.tui.heatmap.heatmap_panel import HeatmapPanel
from lenscope.tui.logits.logit_lens_panel import LensTableView, LogitLensPanel
from lenscope.views.attention import head_shares, token_weights

SPECS = ["emphasis:strength=3,auto_heads=2", "steer:token=happy,strength=20"]


def header(a, panel, selector) -> str:
    return str(a.main.query_one(panel).query_one(selector).render())


async def test_head_map_shows_shares_auto_heads_roles_and_opens_the_heatmap():
    a = app(marks=["blue"], lens_specs=SPECS)
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "6")
        await pilot.press("f5")
        panel = a.main.query_one(HeadMapPanel)
        await pilot.press("r")  # row 1: the emphasis row
        values, what = panel.values()
        cap = a.ws.captures[1]
        q = cap.prompt_len - 1
        assert "share of attention on the marks" in what
        assert np.allclose(values, head_shares(cap.attention, a.ws.result.marked_token_indices, q))
        picked = a.main.query_one(HeadMapPanel).flags[1]
        assert len(picked) == 2 * a.engine.n_layers  # auto_heads=2 on every layer, flagged
        await pilot.press("d")
        diff, what = panel.values()
        assert "minus baseline" in what
        assert all(diff[cell] > 0 for cell in picked if cell[0] == 0)  # the picked heads gain on the marks
        # the others do not (to float error: rows are captured in one batch, whose products round differently)
        assert all(abs(diff[0, h]) < 1e-5 for h in range(diff.shape[1]) if (0, h) not in picked)
        await pilot.press("full_stop", "full_stop")  # step 2: the query moves into the output
        assert "step 2" in header(a, HeadMapPanel, "#headmap-header")
        await pilot.press("down", "down", "right", "enter")
        assert a.main.query_one(TabbedContent).active == "heatmap"
        heat = a.main.query_one(HeatmapPanel)
        assert (heat.row, heat.layer_index, heat.head_index) == (1, 2, 1)
        await pilot.press("f5", "m", "m")  # entropy, then the previous-token role (measured now)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert panel.mode == "previous" and a.ws.head_roles is not None
        values, what = panel.values()
        assert "previous-head score" in what and values.shape == (a.engine.n_layers, a.engine.n_heads)


async def test_logit_lens_tab_decodes_moves_and_pins():
    a = app(marks=["blue"], lens_specs=SPECS)
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "6")
        await pilot.press("f6")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        panel = a.main.query_one(LogitLensPanel)
        table = a.main.query_one(LensTableView).table
        assert table is not None
        cap = a.ws.captures[0]
        assert panel.cursor == cap.prompt_len - 1
        first_output = a.engine.token_text(a.ws.result.rows[0].token_ids[0])
        assert table.tokens[-1][-1] == first_output  # the last layer predicts what was generated
        await pilot.press("p")  # pin that prediction
        await pilot.press("right")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert panel.cursor == cap.prompt_len and panel.pinned == [a.ws.result.rows[0].token_ids[0]]
        await pilot.press("r")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert a.main.query_one(LensTableView).table is not None and panel.row == 1
        assert "row 1" in header(a, LogitLensPanel, "#lens-header")
        assert a.main.query_one("#lens-chart").display
        await pilot.press("home")  # the first screenful of positions, not one column
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        shown = len(panel._lens(panel.row).positions)
        assert shown == min(panel._columns(), len(a.ws.captures[1].ids)) > 1
        assert f"positions 0–{shown - 1}" in header(a, LogitLensPanel, "#lens-header")


async def test_geometry_identity_is_zero_and_steering_is_not():
    a = app(lens_specs=["identity", "steer:token=happy,strength=20,layers=2"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "6")
        await pilot.press("f7")
        panel = a.main.query_one(GeometryPanel)
        assert panel.row == 1
        from lenscope.tui.widgets.heatmap_view import HeatmapView

        view = panel.query_one(HeatmapView)
        assert np.abs(view._matrix).max() < 1e-5  # 1 - cosine of the identity row
        await pilot.press("r")
        n = a.ws.captures[0].prompt_len  # on the prompt: generated tokens differ, so do their embeddings
        assert view._matrix[:3, :n].max() < 1e-5 and view._matrix[3:, :n].max() > 1e-3  # steered after block 2
        await pilot.press("m")
        assert "norm ratio" in header(a, GeometryPanel, "#geometry-header")


async def test_attention_on_text_follows_the_cursor_and_sources():
    a = app(marks=["blue"], lens_specs=SPECS)
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "6")
        view = a.main.query_one(ComparePanel)
        view.focus()
        await pilot.press("a", "down", "right")
        pane = view.query_one("#attention-text")
        assert pane.display
        cap = a.ws.captures[1]
        q = cap.prompt_len + 1
        assert np.allclose(pane.weights(1, q), token_weights(cap.attention, q))
        for source in ("layer", "head", "rollout"):
            await pilot.press("g")
            assert pane.source == source
        assert np.allclose(pane.weights(1, q), token_weights(cap.attention, q, use_rollout=True))
        await pilot.press("d")
        text = str(pane.body.render())
        assert "minus baseline" in text and "rollout" in text


async def test_change_lens_run_again_and_the_views_follow():
    """The loop a person does: run, look, change the lens, run again, look again."""
    a = app(marks=["blue"], lens_specs=["emphasis:strength=1"])
    async with a.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "4")
        first = a.ws.captures[1].attention.copy()
        await pilot.press("f5", "r")  # the lens row
        before = a.main.query_one(HeadMapPanel).values()[0].copy()
        from lenscope.lenses.spec import parse_inline

        a.ws.variants[0] = parse_inline("emphasis:strength=4")
        a.pane.show_variants(0)
        await run_and_wait(pilot, "4")
        assert not np.allclose(a.ws.captures[1].attention, first)
        await pilot.press("f5")
        after = a.main.query_one(HeadMapPanel).values()[0]
        assert after is not None and not np.allclose(after, before)
        assert a.main.query_one(HeadMapView).map is not None


async def test_tree_tab_grows_and_opens_a_path_as_a_row():
    from textual.widgets import Tree

    from lenscope.tui.tree.tree_panel import TreePanel

    a = app(prompt="one day, tom went to the park. the sun was")
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f8", "g")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        panel = a.main.query_one(TreePanel)
        assert panel.grown is not None and len(panel.grown.nodes) > 3
        widget = panel.query_one(Tree)
        widget.focus()
        await pilot.press("down", "down")
        node_id = widget.cursor_node.data
        path_text = panel.grown.nodes[node_id].text
        await pilot.press("o")
        assert a.ws.variants[-1].name == f"tree node {node_id}"
        await run_and_wait(pilot, "8")
        row = a.ws.result.rows[-1]
        assert row.text.startswith(path_text.rstrip())
        assert "nodes" in str(panel.query_one("#tree-header").render())


async def test_export_writes_the_comparison_on_screen_as_html_and_md(tmp_path):
    import json as _json

    import html5lib

    from lenscope.tui.dialogs.lens_dialogs import PathPrompt

    a = app(marks=["blue"], lens_specs=SPECS)
    async with a.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await run_and_wait(pilot, "6")
        await pilot.press("ctrl+g")
        assert isinstance(a.screen, PathPrompt)
        a.screen.query_one(Input).value = str(tmp_path / "exp")
        await pilot.press("enter")
        await pilot.pause()
        page = (tmp_path / "exp" / "report.html").read_text()
        doc = html5lib.parse(page, namespaceHTMLElements=False)
        data = _json.loads(doc.find(".//script[@id='data']").text.replace("<\\/", "</"))
        rec = data["results"][0]
        assert [r["token_ids"] for r in rec["rows"]] == [r.token_ids for r in a.ws.result.rows]
        assert len(rec["attention"]["rows"]) == 3 and "lenscope tui" in page
        assert "emphasis" in (tmp_path / "exp" / "report.md").read_text()


async def test_every_view_says_the_capture_follows_while_a_run_goes():
    from lenscope.tui.tab_actions import WAITING

    a = app(lens_specs=["identity"])
    async with a.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        a.tabs.clear_captures()  # what a run's start does
        for tab in ("f4", "f5", "f6", "f7"):
            await pilot.press(tab)
            await pilot.pause()
            assert WAITING in "\n".join(str(s.render()) for s in a.main.query("Static, HeatmapView, LensTableView")
                                        if s.display), tab
        a.tabs.stop_waiting()  # the run failed: nothing will come
        await pilot.press("f4")
        await pilot.pause()
        assert not any(WAITING in str(s.render()) for s in a.main.query("Static, HeatmapView"))


def test_charts_hold_sixteen_rows():
    """16 rows: 16 colours, a legend of at most two lines, and a plot that asks for room
    rather than drawing two lines."""
    from lenscope.tui.widgets.charts import COLORS, LEGEND_LINES, legend, line_chart, row_style

    assert len({c for c in COLORS}) == 16 and len({row_style(r) for r in range(16)}) == 16
    names = [f"emphasis:strength={s},heads=0|1|2" for s in range(16)]
    for width in (80, 120):
        key = legend(names, width)
        assert -(-key.cell_len // width) <= LEGEND_LINES
        assert all(f"━{r}" in key.plain or names[r][:6] in key.plain for r in range(16))
    series = [(r, [0.1 * r, 0.2]) for r in range(16)]
    assert "enlarge the terminal" in line_chart(series, "t", 80, 2).plain
    assert "enlarge the terminal" not in line_chart(series, "t", 80, 8).plain
