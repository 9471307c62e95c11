"""Conversations on the demo model: marks that hold as the transcript grows and is
re-tokenized, tracked concepts, the per-span share the engine measures (checked against a
capture by hand), keep and branches modes, sessions that replay exactly, experiments with turns."""

import json

import numpy as np
import pytest

from lenscope.batch import experiment, experiment_file
from lenscope.chat import conversation as convs
from lenscope.chat.conversation import ChatMessage, Conversation, Mark
from lenscope.errors import BadInput
from lenscope.lenses.spec import parse_inline
from lenscope.storage import session

EMPH = [parse_inline("emphasis:strength=3")]
RUN = {"max_tokens": 6, "temperature": 0.0, "seed": 0}


def text_of(engine, lay, tokens):
    return "".join(engine.token_text(lay.ids[i]) for i in sorted(tokens))


def test_marks_hold_as_turns_are_appended_and_the_transcript_retokenized(engine):
    conv = Conversation.start("you keep secrets")
    convs.run_turn(engine, conv, "the key is blue. remember it.", EMPH, mark=["blue"], **RUN)
    assert conv.marks == [Mark(1, 11, 15)]
    # a mark on the model's own reply, placed on the tokens as the transcript reads them now
    lay = convs.layout(engine.tokens, conv.messages, generation_prompt=False)
    reply = conv.messages[2]
    reply_tokens = lay.tokens_of(Mark(2, 0, len(reply.text)))
    conv.marks += lay.marks_of(set(sorted(reply_tokens)[:2]))
    marked_reply = conv.mark_text(conv.marks[-1])
    assert marked_reply and marked_reply == marked_reply.strip() and marked_reply in reply.text
    for user in ("what colour is it?", "and the door?", "say it again"):
        convs.run_turn(engine, conv, user, EMPH, **RUN)
        lay = convs.layout(engine.tokens, conv.messages)
        assert text_of(engine, lay, lay.tokens_of(conv.marks[0])).strip() == "blue"
        assert text_of(engine, lay, lay.tokens_of(conv.marks[1])).strip() == marked_reply.strip()
        # no mark lands on the template's own tokens
        assert not (lay.tokens_of(conv.marks[0]) & lay.template_tokens())
    # every turn measured both spans, and their distance to the answer grew
    distances = [t["rows"][0]["distances"][0] for t in conv.turns]
    assert distances == sorted(distances) and distances[0] < distances[-1]
    assert all(len(t["rows"][0]["shares"]) == len(t["spans"]) for t in conv.turns)


def test_tracked_concept_marks_every_later_spelling_and_nothing_else(engine):
    messages = [ChatMessage("user", "Register an atexit handler."),
                ChatMessage("assistant", "Sure: ATEXIT runs at exit; sys.exit and atexitx are different."),
                ChatMessage("user", "Does At Exit matter? use  atexit  again")]
    lay = convs.layout(engine.tokens, messages)
    found = lay.concept_tokens(messages, "atexit")
    words = [lay.text[lay.spans[i][0]:lay.spans[i][1]] for i in sorted(found)]
    assert "".join(words).lower().replace(" ", "").count("atexit") == 3  # 'atexitx' and 'exit' are not it
    assert "x" not in "".join(words).lower().replace("atexit", "")
    phrase = lay.concept_tokens(messages, "at exit")  # spaces inside a concept match any run of spaces
    assert "".join(lay.text[lay.spans[i][0]:lay.spans[i][1]] for i in sorted(phrase)).lower().count("exit") == 2


def test_tracked_concept_follows_the_conversation_into_replies(engine):
    conv = Conversation.start()
    conv.concepts = ["mia"]
    convs.run_turn(engine, conv, "who is mia?", [], **RUN)
    assert conv.turns[0]["spans"] == ["tracked 'mia'"]
    conv.messages[-1] = ChatMessage("assistant", "Mia is a girl. mia likes cats.")  # a reply that says it twice
    convs.run_turn(engine, conv, "tell me more", [], **RUN)
    lay = convs.layout(engine.tokens, conv.messages[:-1])
    tokens = lay.concept_tokens(conv.messages[:-1], "mia")
    assert text_of(engine, lay, tokens).lower().replace(" ", "") == "miamiamia"


def test_share_per_span_is_the_attention_the_answer_paid_it(engine):
    """The engine's per-span share equals a capture by hand: for each generated token, the
    attention its query paid to the span's tokens, mean over layers and heads, then over steps."""
    conv = Conversation.start()
    conv.concepts = ["key"]
    record = convs.run_turn(engine, conv, "the key is blue. where is the key?", [], mark=["blue"], **RUN)
    lay = convs.layout(engine.tokens, [ChatMessage("user", "the key is blue. where is the key?")])
    row = record["rows"][0]
    ids = lay.ids + row["token_ids"]
    probs = engine.capture_attention(ids).astype(np.float64).mean(axis=(0, 1))  # (L, L)
    P = len(lay.ids)
    groups = conv.groups(lay, [ChatMessage("user", "the key is blue. where is the key?")])
    assert len(groups) == 2 and all(groups)
    n_steps = len(row["token_ids"]) + (0 if not row["finished"] else 1)
    for g, share in zip(groups, row["shares"]):
        by_hand = np.mean([probs[P - 1 + t, g].sum() for t in range(min(n_steps, len(ids) - P + 1))])
        assert share == pytest.approx(by_hand, abs=2e-3)
    assert row["distances"] == [P - 1 - max(g) for g in groups]


def test_emphasis_raises_the_share_on_the_marked_span(engine):
    conv = Conversation.start()
    rec = convs.run_turn(engine, conv, "the key is blue. then jack waved. what color is the key?", EMPH,
                         mark=["the key is blue."], **RUN)
    base, lensed = rec["rows"][0]["shares"][0], rec["rows"][1]["shares"][0]
    assert lensed > 1.5 * base


def test_hold_holds_its_fresh_share_turn_after_turn(engine):
    """A `hold` row records the share it held each turn (the fade chart's target), and its
    share on the span stays at or above it while the baseline's falls as the span recedes."""
    conv = Conversation.start(mode="branches")
    hold = [parse_inline("hold:ceiling=8")]
    for user in ("the key is blue. where is the key?", "then jack waved and sat down by the door.",
                 "tom ran to the park with his big dog."):
        rec = convs.run_turn(engine, conv, user, hold, mark=["the key is blue."] if not conv.turns else [], **RUN)
    data = convs.fade(conv)
    assert list(data["held"]) == [rec["rows"][1]["name"]] and all(v is not None for v in data["held"]["hold:ceiling=8"])
    lens = hold[0].lenses[0]
    assert data["held"]["hold:ceiling=8"][-1] == pytest.approx(float(lens.fresh.mean()), abs=1e-5)
    base, held = data["shares"][data["labels"][0]]
    assert base[-1] < base[0] and held[-1] > 2 * base[-1]


def test_keep_mode_keeps_the_chosen_row_and_branches_mode_each_rows_own(engine):
    turns = ["the key is blue.", "what colour is it?", "and the door?"]
    strong = [parse_inline("bias:words=mia,value=8")]
    keep0, keep1, branches = Conversation.start(), Conversation.start(keep=1), Conversation.start(mode="branches")
    for user in turns:
        for conv in (keep0, keep1, branches):
            convs.run_turn(engine, conv, user, strong, **RUN)
    replies = lambda msgs: [m.text for m in msgs if m.role == "assistant"]
    assert replies(keep0.messages) == [t["rows"][0]["text"] for t in keep0.turns]
    assert replies(keep1.messages) == [t["rows"][1]["text"] for t in keep1.turns]
    assert replies(branches.branches[0]) == [t["rows"][0]["text"] for t in branches.turns]
    assert replies(branches.branches[1]) == [t["rows"][1]["text"] for t in branches.turns]
    assert replies(branches.branches[0]) != replies(branches.branches[1])
    # the baseline's branch is the keep-the-baseline conversation, token for token
    assert [t["rows"][0]["token_ids"] for t in branches.turns] == [t["rows"][0]["token_ids"] for t in keep0.turns]
    # keeping the lens row's reply changes what the baseline reads next
    assert keep0.turns[1]["rows"][0]["token_ids"] != keep1.turns[1]["rows"][0]["token_ids"] or \
        keep0.turns[2]["rows"][0]["token_ids"] != keep1.turns[2]["rows"][0]["token_ids"]


def test_conversation_session_saves_and_replays_exactly(engine, tmp_path):
    conv = Conversation.start("be brief")
    convs.run_turn(engine, conv, "the key is blue.", EMPH, mark=["blue"], **RUN)
    conv.concepts.append("key")  # tracked from turn 2 on
    convs.run_turn(engine, conv, "where is the key?", [parse_inline("emphasis:strength=1.5")], **RUN)
    conv.keep = 1
    convs.run_turn(engine, conv, "and the door?", EMPH, max_tokens=4, temperature=0.7, seed=3)
    assert conv.messages[-1].text == conv.turns[-1]["rows"][1]["text"]
    assert conv.keep_row(0)  # changed their mind: the baseline's reply joins the transcript after all
    assert conv.messages[-1].text == conv.turns[-1]["rows"][0]["text"] and not conv.keep_row(5)
    path = tmp_path / "conv.json"
    session.save(session.Session(model="demo", conversation=conv.to_json()), path)
    loaded = convs.from_json(session.load(path).conversation, "saved")
    assert loaded.to_json() == json.loads(json.dumps(conv.to_json()))
    again = convs.replay(engine, loaded)
    assert again.messages == conv.messages
    for a, b in zip(again.turns, conv.turns):
        assert a["spans"] == b["spans"]
        assert [r["token_ids"] for r in a["rows"]] == [r["token_ids"] for r in b["rows"]]
        assert np.allclose([r["shares"] for r in a["rows"]], [r["shares"] for r in b["rows"]], atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"marks": [{"message": 5, "start": 0, "end": 2}]}, "mark 1"),
    ({"mode": "fork"}, "'mode'"),
    ({"messages": [{"role": "robot", "text": "hi"}]}, "messages 1"),
    ({"concepts": [" "]}, "'concepts'"),
    ({"turns": [{"user": "hi", "rows": "x"}]}, "turn 1"),
    ({"turns": [{"user": "hi", "spans": [], "rows": [{"name": "b", "text": "", "token_ids": [], "shares": [],
                                                      "distances": [], "passed": None, "score": None}]}]},
     "turn 1"),  # no setup: what it ran with is unknown
])
def test_bad_saved_conversation_is_one_line(bad, message):
    data = {"messages": [{"role": "user", "text": "hi"}], **bad}
    with pytest.raises(BadInput, match=message):
        convs.from_json(data, "saved")


def write(tmp_path, body):
    path = tmp_path / "exp.toml"
    path.write_text(body)
    return path


def test_experiment_with_turns_runs_checks_and_resumes(engine, tmp_path):
    path = write(tmp_path, '''
[defaults]
max_tokens = 5
lens = ["emphasis:strength=3"]
[[comparison]]
name = "key"
system = "the key is blue"
turns = ["where is the key?", "what colour is it?"]
mark = ["blue"]
track = ["key"]
check = {kind = "contains", text = "the"}
[[comparison]]
name = "plain"
prompt = "the key is blue. the key is"
''')
    exp = experiment_file.load(path)
    out = tmp_path / "out"
    first = experiment.run(engine, exp, out, progress=lambda m: None)
    conv = first[0]["conversation"]
    assert [len(t["rows"]) for t in conv["turns"]] == [2, 2]
    assert conv["turns"][0]["spans"] == ["turn 0: 'blue'", "tracked 'key'"]
    assert conv["mode"] == "keep"
    for t in conv["turns"]:
        for row in t["rows"]:
            assert row["passed"] == ("the" in row["text"].lower())
            # an experiment measures each reply's fluency as the `fluency` score part does
            from lenscope.core.logprob import score

            prompt = t["results"][0]["prompt"]  # keep mode: one comparison, one prompt for every row
            _, c_ids, rows = score(engine, prompt, row["text"])
            assert row["fluency"] == pytest.approx(rows[0].logprob / len(c_ids), abs=1e-3)
    from lenscope.reports.conversation import summary

    s = summary(first)
    assert s["distinct"][0][0] == pytest.approx(len(set(conv["turns"][0]["rows"][0]["token_ids"]))
                                                / len(conv["turns"][0]["rows"][0]["token_ids"]))
    assert all(v is not None for per_turn in s["fluency"] for v in per_turn)
    report = (out / "report.md").read_text()
    assert "**Turn 2.** User: what colour is it?" in report
    html = (out / "report.html").read_text()
    assert "share on turn 0: &#x27;blue&#x27; per turn" in html or "share on turn 0: 'blue' per turn" in html
    again = experiment.run(engine, exp, out, progress=lambda m: None, resume=True)
    assert again == first


@pytest.mark.parametrize("extra, message", [
    ('turns = []', "'turns'"),
    ('turns = ["hi"]\nprompt = "x"', "not 'prompt'"),
    ('turns = ["hi"]\nmode = "fork"', "'mode'"),
    ('turns = ["hi"]\nkeep = 3', "'keep'"),
    ('turns = ["hi"]\nchat = false', "chat"),
    ('turns = ["hi"]\ncheck = {kind = "nope"}', "score kind"),
    ('prompt = "hi"\ntrack = ["x"]', "for conversations"),
])
def test_bad_conversation_experiment_is_one_line(tmp_path, extra, message):
    with pytest.raises(BadInput, match=message):
        experiment_file.load(write(tmp_path, f'[[comparison]]\n{extra}\n'))


def test_mark_that_occurs_nowhere_is_refused_before_running(engine, tmp_path):
    exp = experiment_file.load(write(tmp_path, '[[comparison]]\nname = "c"\nturns = ["hi there"]\nmark = ["absent"]\n'))
    with pytest.raises(BadInput, match="mark 'absent'"):
        experiment.run(engine, exp, tmp_path / "out", progress=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_fade_follows_each_row_by_name_when_lenses_change_between_turns(engine):
    conv = Conversation.start()
    strong, weak = parse_inline("emphasis:strength=3"), parse_inline("decay")
    convs.run_turn(engine, conv, "the key is blue.", [strong], mark=["blue"], **RUN)
    convs.run_turn(engine, conv, "what colour is it?", [strong, weak], **RUN)
    convs.run_turn(engine, conv, "and the door?", [weak], **RUN)  # emphasis removed
    data = convs.fade(conv)
    assert data["rows"] == ["baseline", "emphasis:strength=3", "decay"]
    shares = data["shares"]["turn 1: 'blue'"]
    assert shares[1][2] is None and shares[1][0] is not None  # emphasis: turns 1-2 only
    assert shares[2][0] is None and shares[2][2] == conv.turns[2]["rows"][1]["shares"][0]  # decay from turn 2


def test_messages_are_found_where_they_are_not_in_the_templates_own_words(engine):
    """A message that reads like the template ("user" inside "<|user|>") is still placed on its own text."""
    messages = [ChatMessage("user", "user"), ChatMessage("assistant", "assistant"), ChatMessage("user", "<|")]
    text, offsets = convs.render(engine.tokenizer, messages)
    assert [text[a:b] for a, b in offsets] == ["user", "assistant", "<|"]
    assert offsets[0][0] == text.index("<|user|>") + len("<|user|>")
    lay = convs.layout(engine.tokens, messages)
    assert "".join(engine.token_text(lay.ids[i]) for i in sorted(lay.tokens_of(Mark(0, 0, 4)))) == "user"


def test_a_conversations_record_says_the_precision_its_turns_ran_with(engine, monkeypatch):
    """A conversation run in float32 and exported after a relaunch that loaded native says float32."""
    from lenscope.chat import conversation as convs

    monkeypatch.setattr(convs, "fade", lambda conv: {})  # these turns hold results only
    conv = convs.Conversation.start()
    conv.turns = [{"setup": {}, "results": [{"precision": "float32 (dequantized)"}]}]
    assert engine.loaded.precision != "float32 (dequantized)"
    assert convs.record("c", engine, conv, [])["precision"] == "float32 (dequantized)"
    conv.turns.append({"setup": {}, "results": [{"precision": "native (quantized)"}]})
    assert convs.record("c", engine, conv, [])["precision"] == "float32 (dequantized) + native (quantized)"
