"""Schema is a product: every type, field, argument and enum value is described."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from app.graphql.schema import build_schema
from app.settings import Settings


def test_everything_has_a_description() -> None:
    schema = build_schema(Settings())._schema
    missing: list[str] = []
    for name, t in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not t.description:
            missing.append(f"type {name}")
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            for fname, f in t.fields.items():
                if not f.description:
                    missing.append(f"field {name}.{fname}")
                for aname, a in f.args.items():
                    if not a.description:
                        missing.append(f"argument {name}.{fname}({aname})")
        elif isinstance(t, GraphQLInputObjectType):
            for fname, f in t.fields.items():
                if not f.description:
                    missing.append(f"input field {name}.{fname}")
        elif isinstance(t, GraphQLEnumType):
            for vname, v in t.values.items():
                if not v.description:
                    missing.append(f"enum value {name}.{vname}")
        elif isinstance(t, GraphQLUnionType) and not t.description:
            missing.append(f"union {name}")
    assert missing == []
