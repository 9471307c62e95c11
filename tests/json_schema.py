"""JSON Schema (draft 2020-12) from the TypedDicts that declare lenscope's outputs
(core/records.py, cli/outputs.py): docs/json/*.schema.json are made by this, and
tests/test_schemas.py checks the files are current and validates real outputs with them."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints

from lenscope.cli.outputs import OPEN, SCHEMAS
from lenscope.core.records import SCHEMA_VERSION

SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def schema_of(tp: Any, defs: dict[str, Any], closed: bool = True) -> dict[str, Any]:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return {}
    if origin is NotRequired:
        return schema_of(args[0], defs, closed)
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_of(a, defs, closed) for a in args]}
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": schema_of(args[0], defs, closed)}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema_of(args[1], defs, closed)}
    if typing.is_typeddict(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # a placeholder while its fields are made (recursion)
            hints = get_type_hints(tp)
            body: dict[str, Any] = {"type": "object",
                                    "properties": {k: schema_of(v, defs, closed) for k, v in hints.items()},
                                    "required": sorted(tp.__required_keys__), "additionalProperties": not closed}
            if tp.__doc__ and not tp.__doc__.startswith(f"{tp.__name__}("):
                body = {"description": " ".join(tp.__doc__.split()), **body}
            defs[tp.__name__] = body
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if tp in SCALARS:
        return {"type": SCALARS[tp]}
    raise TypeError(f"no JSON Schema for {tp!r}")


def schema_for(tp: Any, title: str = "", closed: bool = True) -> dict[str, Any]:
    """A whole schema for one TypedDict: it at the top, the ones it uses in $defs."""
    defs: dict[str, Any] = {}
    top = schema_of(tp, defs, closed)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **({"title": title} if title else {}),
            **top, "$defs": dict(sorted(defs.items()))}


def schema(name: str) -> dict[str, Any]:
    """The schema file of one output (docs/json/NAME.schema.json)."""
    return schema_for(SCHEMAS[name], f"lenscope {name} (schema_version {SCHEMA_VERSION})", closed=name not in OPEN)


def validate(instance: Any, tp_or_name: Any) -> None:
    """jsonschema.ValidationError where `instance` does not match (a TypedDict, or an output's name)."""
    import jsonschema

    s = schema(tp_or_name) if isinstance(tp_or_name, str) else schema_for(tp_or_name)
    jsonschema.validate(instance, s, cls=jsonschema.Draft202012Validator)
