"""Each key is described once (tui/keys.py): the help screen, the palette, the footer and
the key reference (docs/reference/keys.md) all come from the same `Key` declarations."""


from lenscope.tui.app import LenscopeApp
from lenscope.tui.keys import Key, help_rows, hint, palette


def test_every_binding_comes_from_a_key_and_is_in_the_help():
    rows = help_rows(LenscopeApp.key_groups())
    for where, keys in LenscopeApp.key_groups():
        cls_bindings = [(k.keys, k.action) for k in keys if k.keys]
        assert all(k.help for k in keys), where
        assert any(r[0] == where for r in rows)
        assert len(cls_bindings) == len({b[1] for b in cls_bindings}) or where == "variants", where
    actions = {a for _, a, _ in LenscopeApp.PALETTE}
    assert {"run", "add_variant", "toggle_chat", "clear_marks", "attention_text"} <= actions


def test_every_widget_with_keys_is_in_a_tab_entry():
    """A widget's keys reach help and the key reference only through its tab's entry (tui/tabs.py):
    a widget that declares KEYS but is in no entry fails here, not silently."""
    import importlib
    import inspect
    import pkgutil

    import lenscope.tui

    listed = {id(keys) for _, keys in LenscopeApp.key_groups()}
    missing = []
    for info in pkgutil.walk_packages(lenscope.tui.__path__, "lenscope.tui."):
        for name, cls in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
            keys = cls.__dict__.get("KEYS")
            if cls.__module__ == info.name and isinstance(keys, list) and keys and id(keys) not in listed:
                missing.append(f"{info.name}.{name}")
    assert missing == [], f"KEYS in no tab entry's keys (tui/tabs.py): {missing}"


def test_rows_merge_keys_with_the_same_help_and_hints_name_each_key_once():
    keys = [Key("left", "a", "move"), Key("right", "b", "move"), Key("x", "c", "cut", "cut", "Cut it"),
            Key("", "d", "palette only", title="Only")]
    assert help_rows([("here", keys)]) == [("here", "← →", "move"), ("here", "x", "cut")]
    assert palette(keys) == [("Cut it", "c", "cut (x)"), ("Only", "d", "palette only")]
    assert hint(keys + [Key("x", "e", "again")]) == "keys ← → x"
    binding = keys[2].binding()
    assert binding.description == "cut" and binding.show and binding.tooltip == "cut"
    assert not keys[0].binding().show
