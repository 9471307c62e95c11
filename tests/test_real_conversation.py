"""Conversations on SmolLM2: a name stated in turn 1 fades from the baseline's attention as
turns pass, and marking + tracking it with emphasis keeps a larger share on it (the claim
of the 20-conversation run in docs/guide/conversations.md, on one of its conversations)."""

import pytest

from lenscope.chat import conversation as convs
from lenscope.lenses.spec import parse_inline

pytestmark = pytest.mark.real_model

TURNS = ["My dog is called Noodle. In every answer you give me, mention Noodle. What should I feed Noodle?",
         "How do I make a cup of tea?", "What exercise is good for beginners?"]


def test_constraint_fades_in_the_baseline_and_emphasis_keeps_more_of_it(smollm2_engine):
    conv = convs.Conversation.start(mode="branches")
    conv.concepts = ["Noodle"]
    for k, user in enumerate(TURNS):
        convs.run_turn(smollm2_engine, conv, user, [parse_inline("emphasis:strength=3")], max_tokens=16,
                       temperature=0.0, seed=0, mark=["Noodle"] if k == 0 else ())
    base = [t["rows"][0]["shares"][0] for t in conv.turns]
    lens = [t["rows"][1]["shares"][0] for t in conv.turns]
    distances = [t["rows"][0]["distances"][0] for t in conv.turns]
    assert distances == sorted(distances) and distances[-1] > 2 * distances[0]
    assert base[-1] < base[0] / 3  # the baseline's attention on the name fades as it recedes
    assert all(x > 2 * b for x, b in zip(lens, base))  # marked, tracked and emphasised: more of it kept
    # the lens row's own history names the dog; the tracked concept marks it there too
    assert "noodle" in conv.branches[1][1].text.lower()
    assert conv.turns[-1]["spans"] == ["turn 1: 'Noodle'", "turn 1: 'Noodle' #2", "turn 1: 'Noodle' #3",
                                       "tracked 'Noodle'"]
