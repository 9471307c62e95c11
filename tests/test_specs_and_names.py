"""Specs and names: slerp points over [0, t] with a name per row, names that follow edited
parameters, specs that read back what they write (quotes) and say how to quote, tracked
concepts counted as occurrences, chart colours both plotext and Rich know, lens-form text
that is never markup and wraps."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenscope.lenses.base import Variant
from lenscope.lenses.errors import BadInput
from lenscope.lenses.registry import KINDS
from lenscope.lenses.spec import build_lens, expand_points, parse, parse_inline


# -- 1. slerp points: k rows at equidistant t in [0, t], each with its own name ---------------------
def ts(rows: list[Variant]) -> list[float]:
    return [v.lenses[0].t for v in rows]


def test_slerp_points_spread_over_zero_to_t():
    assert ts(parse("slerp:t=0.6,points=3,token=happy")) == [0.0, 0.3, 0.6]
    assert ts(parse("slerp:t=0.6,points=4,token=happy")) == [0.0, 0.2, 0.4, 0.6]  # not 0.19999999999999998
    assert ts(parse("slerp:points=3,token=happy")) == [0.0, 0.15, 0.3]  # t's default, 0.3, is the far end
    assert all(v.lenses[0].points == 0 for v in parse("slerp:t=0.6,points=3,token=happy"))


def test_slerp_points_keyframed_t_is_scaled_per_row():
    rows = parse("slerp:t=0@0|1@10,points=3,token=happy")
    assert [v.lenses[0].t.values() for v in rows] == [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0]]


def test_slerp_help_and_docstring_say_zero_to_t():
    points = next(p for p in KINDS["slerp"].params if p.name == "points")
    assert "[0, t]" in points.help
    assert "[0, t]" in expand_points.__doc__ and "[0, 1]" not in expand_points.__doc__


@pytest.mark.parametrize("spec", ["slerp:t=0.6,points=3,token=happy", "slerp:t=0.001,points=3,token=happy",
                                  "slerp:t=1e-7,points=16,token=happy",
                                  "emphasis:strength=2+slerp:t=0.6,points=5,token=happy"])
def test_expanded_rows_have_distinct_names_that_are_their_specs(spec):
    rows = parse(spec)
    names = [v.name for v in rows]
    assert len(set(names)) == len(names)  # the comparison's column titles are these names
    for v in rows:  # a row named by its spec reads back to its own lenses, t written out
        assert "t=" in v.name
        again = parse_inline(v.name).lenses
        assert [x.normalized() for x in again] == [x.normalized() for x in v.lenses]


def test_expanded_rows_of_a_named_variant_keep_the_name():
    variant = parse_inline("slerp:t=0.6,points=3,token=happy")
    variant.name = "sweep"
    assert [v.name for v in expand_points(variant)] == ["sweep t=0", "sweep t=0.3", "sweep t=0.6"]


def test_points_with_t_zero_is_refused():
    with pytest.raises(BadInput, match="t is 0"):
        parse("slerp:t=0,points=3,token=happy")


# -- 1b. a name nobody chose follows the edited parameters; a typed name stays ---------------------
def test_edited_name_follows_new_parameters_unless_typed():
    from lenscope.lenses.spec import edited_name, is_auto_name

    old = Variant("emphasis:strength=3", [build_lens({"kind": "emphasis", "strength": 3}, "t")])
    new = [build_lens({"kind": "emphasis", "strength": 5}, "t")]
    assert is_auto_name(old.name, old.lenses)
    assert edited_name(old.name, old, new, new[0].label()) == "emphasis:strength=5"
    # the spec as typed (other order, a default written out) is still no chosen name
    typed_spec = parse_inline("slerp:token=happy,t=0.3,layers=1")
    assert is_auto_name(typed_spec.name, typed_spec.lenses)
    slerp = [build_lens({"kind": "slerp", "token": "sad", "layers": "1"}, "t")]
    assert edited_name(typed_spec.name, typed_spec, slerp, slerp[0].label()) == "slerp:layers=1,token=sad"
    # a name the person typed stays; an emptied one becomes the spec; unchanged lenses keep their name
    mine = Variant("strong emphasis", old.lenses)
    assert edited_name("strong emphasis", mine, new, new[0].label()) == "strong emphasis"
    assert edited_name("  ", old, new, new[0].label()) == "emphasis:strength=5"
    row = parse("slerp:t=0.6,points=3,token=happy")[1]  # "slerp:t=0.3,token=happy"
    assert edited_name(row.name, row, row.lenses, row.lenses[0].label()) == row.name
    assert not is_auto_name("my steer", new)


class _Host:
    """A bare Textual app to open one dialog in (no model) and catch what it returns."""

    @staticmethod
    def make(screen, size=(100, 40)):
        from textual.app import App

        class Host(App):
            result = "unset"

            def on_mount(self) -> None:
                self.push_screen(screen, self.done)

            def done(self, value) -> None:
                self.result = value

        return Host()


async def _edited(dialog, field: str, value: str, key: str) -> Variant:
    """What a dialog returns after `field` is set to `value` and `key` applies it."""
    from textual.widgets import Input

    app = _Host.make(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        app.screen.query_one(field, Input).value = value
        await pilot.press(key)
        await pilot.pause()
    return app.result


async def test_lens_form_and_spec_editor_rename_a_variant_named_by_its_spec():
    from lenscope.tui.dialogs.lens_dialogs import LensForm, SpecEditor

    old = parse_inline("emphasis:strength=3")
    assert (await _edited(LensForm("emphasis", old), "#p-strength", "5", "ctrl+s")).name == "emphasis:strength=5"
    mine = await _edited(LensForm("emphasis", Variant("strong", old.lenses)), "#p-strength", "5", "ctrl+s")
    assert mine.name == "strong" and mine.lenses[0].strength == 5
    spec = await _edited(SpecEditor("emphasis:strength=3", "emphasis:strength=3"), "#spec", "emphasis:strength=4",
                         "enter")
    assert spec.name == "emphasis:strength=4"


# -- 2. a spec reads back what it writes: values with , + " | quoted ---------------------------------
TRICKY = ["a{1,3}", "[Red]", "x+y", 'say "hi"', "a|b", "k=v:w", " padded ", "back\\slash", "end\\",
          '\\"', "", ",", "+", '"', "é ⏎ \udcff"]


def _values(p, draw):
    """A value for parameter `p`, as a lens file would hold it."""
    if p.choices:
        return draw(st.sampled_from(p.choices))
    if p.type == "bool":
        return draw(st.booleans())
    if p.type == "int":
        lo, hi = p.bounds()
        return draw(st.integers(int(lo), int(hi)))
    if p.type == "float":
        lo, hi = p.bounds()
        number = st.floats(-1e6 if lo is None else lo, 1e6 if hi is None else hi, allow_nan=False)
        if p.keyframes and draw(st.booleans()):
            return draw(st.lists(st.tuples(st.integers(0, 100), number).map(list), min_size=1, max_size=3))
        return draw(number)
    if p.type == "ints":
        return draw(st.none() | st.lists(st.integers(-4, 4), max_size=3))
    text = st.sampled_from(TRICKY) | st.text(max_size=8)
    if p.type == "strs":
        return draw(st.lists(text, max_size=3))
    return draw(text)


def _made_files() -> dict[str, dict[str, str]]:
    """A fitted lens file and an adapter folder: the two kinds that read one when made."""
    import json as _json
    import tempfile

    import mlx.core as mx

    from lenscope.lenses import fitted

    folder = Path(tempfile.mkdtemp(prefix="lenscope-kinds-"))
    fitted.write(folder / "f.safetensors", "steer", {"layer.0.v": np.ones(8)},
                 {"hidden_size": 8, "n_layers": 2, "vocab": "0" * 16, "model": "m"})
    (folder / "adapter_config.json").write_text(_json.dumps({"fine_tune_type": "lora"}))
    mx.save_safetensors(str(folder / "adapters.safetensors"),
                        {"model.layers.0.mlp.up_proj.lora_a": mx.zeros((8, 2)),
                         "model.layers.0.mlp.up_proj.lora_b": mx.zeros((2, 8))})
    return {"fitted": {"file": str(folder / "f.safetensors")}, "adapter": {"path": str(folder)}}


MADE = _made_files()


@st.composite
def lenses(draw, kind: str):
    cls = KINDS[kind]
    entry = {"kind": kind, **MADE.get(kind, {})}
    files = getattr(cls, "FILES", {})  # constrain's grammar files are read when it is made: none here
    for p in cls.params:
        if p.name not in files and p.name not in entry and draw(st.booleans()):
            entry[p.name] = _values(p, draw)
    return build_lens(entry, "test")


def _same(a, b) -> bool:
    return [x.normalized() for x in a] == [x.normalized() for x in b]


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_lens_label_reads_back(kind, data):
    lens = data.draw(lenses(kind))
    again = parse_inline(lens.label()).lenses
    assert _same(again, [lens]), lens.label()
    other = data.draw(lenses(data.draw(st.sampled_from(list(KINDS)))))
    stack = "+".join(x.label() for x in (lens, other))
    assert _same(parse_inline(stack).lenses, [lens, other]), stack


@pytest.mark.parametrize("entry", [
    {"kind": "constrain", "regex": "a{1,3}"},
    {"kind": "constrain", "json_schema": '{"type": "object", "required": ["a", "b"]}'},
    {"kind": "bias", "words": ["[Red]", "X"]},
    {"kind": "bias", "words": ["a,b", "c|d", 'say "hi"', ""]},
    {"kind": "force", "text": " two+two=four, \\o/ "},
    {"kind": "patch", "source": "a, b: c", "span": "0:5", "layers": []},
    {"kind": "head-scale", "heads": "all"},
    {"kind": "steer", "strength": 1e-7, "token": "+"},
    {"kind": "emphasis", "strength": [[0, 0.1 + 0.2], [10, 4]]},
])
def test_tricky_values_read_back(entry):
    lens = build_lens(entry, "test")
    assert _same(parse_inline(lens.label()).lenses, [lens]), lens.label()


def test_numbers_are_written_short_exact_and_without_plus():
    from lenscope.lenses.params import number_text

    assert [number_text(x) for x in (0.3, 1.0, 1e20, 1e-7, 0.1 + 0.2)] == ["0.3", "1", "1e20", "1e-07",
                                                                          "0.30000000000000004"]


def test_plain_labels_stay_unquoted():
    for spec in ("patch:mode=reverse,span=3:4", "bias:words=a|b,value=2", "emphasis:strength=0@0|4@10,layers=0|1",
                 "constrain:regex=[a-z]*"):
        assert parse_inline(spec).lenses[0].label() == spec


@pytest.mark.parametrize("spec,sep,quoted", [
    ("constrain:regex=a{1,3}", ",", 'regex="a{1,3}"'),
    ("bias:words=a{1,2,3},value=2", ",", 'words="a{1,2,3}"'),
    ("constrain:json_schema={\"a\": [1, 2]}", ",", 'json_schema="{\\"a\\": [1, 2]}"'),
    ("constrain:regex=a+b", "+", 'regex="a+b"'),
])
def test_an_unquoted_comma_or_plus_says_to_quote(spec, sep, quoted):
    with pytest.raises(BadInput) as exc:
        parse_inline(spec)
    message = str(exc.value)
    assert message.endswith(f"quote a value that holds '{sep}': {quoted}")
    kind = spec.partition(":")[0]
    parse_inline(f"{kind}:{quoted}")  # the hint, as written, reads


def test_quoted_list_items():
    assert parse_inline('bias:words="a,b"|c|"d|e"').lenses[0].words == ("a,b", "c", "d|e")
    assert parse_inline('bias:words="a|b"').lenses[0].words == ("a|b",)  # as before: one quoted item
    assert parse_inline('patch:source="C:\\path, x"').lenses[0].source == "C:\\path, x"  # other backslashes stay


# -- 3. a tracked concept counted in occurrences, not tokens ----------------------------------------
def test_tracked_occurrences_count_matches_not_tokens(engine):
    from lenscope.chat import conversation as convs
    from lenscope.tui.workspace import Workspace

    ws = Workspace(prompt="Does Whiskerton like fish?")
    ws.conversation = convs.Conversation.start()
    ws.conversation.messages = [convs.ChatMessage("user", "My cat is called Whiskerton."),
                                convs.ChatMessage("assistant", "What a fine name.")]
    ws.conversation.concepts = ["Whiskerton"]
    ws.retokenize(engine.tokens)
    assert len(ws.tracked_hits("Whiskerton")) > 2  # several tokens per occurrence on this tokenizer
    assert ws.tracked_occurrences("Whiskerton") == 2
    assert ws.tracked_occurrences("whiskerton") == 2  # any case, as tracking matches
    assert ws.tracked_occurrences("Whisker") == 0  # whole words only
    assert Workspace(prompt="Whiskerton").tracked_occurrences("Whiskerton") == 0  # no conversation
    assert convs.occurrences([convs.ChatMessage("user", "at exit,  at   exit; atexit")], "at exit") == 2


# -- 4. chart colours both plotext and Rich know -----------------------------------------------------
def test_chart_colours_are_valid_in_plotext_and_rich_and_a_legend_of_12_renders():
    from rich.color import Color
    from rich.console import Console

    from lenscope.tui.widgets import charts

    for r, colour in enumerate(charts.COLORS):
        assert isinstance(colour, int) and 0 <= colour < 256  # plotext draws an xterm-256 index as is
        Color.parse(charts.row_style(r))  # Rich raises on one it does not know
    n = 12
    series = [(r, [math.sin(r + t) for t in range(6)]) for r in range(n)]
    chart = charts.line_chart(series, "KL per step", 80, 12)
    key = charts.legend([f"row {r}" for r in range(n)])
    out = io.StringIO()
    Console(file=out, width=100, force_terminal=True, color_system="256").print(chart, key)
    assert "row 11" in out.getvalue()
    # every row's line is coloured, one colour each
    styles = {str(span.style) for span in chart.spans}
    assert len(styles) >= n


# -- 5. lens dialogs: descriptions are not markup, and they wrap --------------------------------------
def test_dialog_text_is_not_read_as_markup():
    from lenscope.lenses.params import Param
    from lenscope.tui.dialogs.lens_dialogs import kind_line, param_line

    p = Param("words", "strs", (), "texts like [Red] or [b]bold[/b], kept as written")
    assert param_line(p).plain == "words (strs) — texts like [Red] or [b]bold[/b], kept as written"
    for kind, cls in KINDS.items():
        assert kind_line(kind).plain == f"{kind}  {cls.summary}"
        for q in cls.params:
            assert q.help in param_line(q).plain


async def test_lens_form_descriptions_wrap_within_the_dialog():
    from textual.widgets import Label

    from lenscope.tui.dialogs.lens_dialogs import LensForm

    app = _Host.make(LensForm("slerp"), size=(60, 40))
    async with app.run_test(size=(60, 40)) as pilot:
        await pilot.pause()
        dialog = app.screen.query_one(".dialog")
        labels = list(app.screen.query(Label))
        assert labels
        for label in labels:
            assert label.region.right <= dialog.region.right
        longest = max(labels, key=lambda w: len(str(w.render())))
        assert longest.region.height > 1  # wrapped, not cut


def test_charts_draw_around_infinite_and_nan_values():
    """A lens that masks a token makes KL infinite: the chart leaves a gap (plotext raised here)."""
    import numpy as np

    from lenscope.tui.geometry.geometry_panel import pca_chart
    from lenscope.tui.widgets import charts

    chart = charts.line_chart([(1, [0.1, float("inf"), 0.3]), (2, [float("nan"), float("inf")])], "KL", 60, 10)
    assert "KL" in chart.plain
    pts = np.array([[0.0, 1.0], [np.inf, 2.0], [np.nan, 0.0], [1.0, 0.5]])
    assert "PCA" in pca_chart([(0, pts), (1, np.full((3, 2), np.nan))], "PCA", 60, 10).plain
