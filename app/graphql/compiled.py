"""Compiled reads: a repeated read-only operation answered by one SQL statement.

Why: resolving a 4,000-node response field by field costs Python a few hundred
thousand objects (rows, strawberry objects, paths, result dicts) and a statement per
relation level, while PostgreSQL can build the same JSON in one statement
(measured in bench/read_bench against PostGraphile, which plans a whole operation
at once too).

How: once a query document has executed normally *without errors* — so it parsed,
validated and passed every limit — it is compiled, if every field it selects is in
the subset below, into one ``SELECT`` that builds the response's ``data`` object as
JSON inside PostgreSQL, with the same rows, order, visibility and formatting as the
resolvers. Later requests with that document bind their variables into the plan and
run it on a connection pinned to the caller's tenant (:mod:`app.graphql.readpool`),
under the same row-level security. A document outside the subset, or a request whose
variables the plan does not cover (a cursor, a filter, a page size out of range, an
id of another type), takes the resolvers: the compiled path never produces an error
of its own.

The subset: ``node(id:)`` (one concrete type per field) and ``project(id:)`` at the
root; the scalar fields of Parameter, Component, Requirement and Project; their
to-one relations (checked against the caller's visible projects, as the loaders do),
``dependencies``/``dependents``/``children``/``requirements`` lists, and the
``components``/``parameters``/``requirements`` connections with ``first`` (``nodes``,
``edges { cursor node }``, ``pageInfo``, ``totalCount``); ``__typename`` anywhere.
No directives.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    TypeNode,
    ValueNode,
    VariableNode,
    get_named_type,
    parse,
)

from app import bounded
from app.graphql.common import decode_id


class Unsupported(Exception):
    """The document selects something this compiler does not cover."""


class Fallback(Exception):
    """This request's variables are not covered by the plan: use the resolvers."""


class PinMismatch(Exception):
    """A compiled statement found its connection acting as someone else."""


# --- plans ---------------------------------------------------------------------------

Binder = Callable[[Mapping[str, Any]], Any]

# $1…$5 of every plan: the caller's organization, user and admin flag as the last
# lookup of the bearer token found them, the token's digest and id.
_FIXED_PARAMS = 5


@dataclass(frozen=True)
class Plan:
    """One compiled operation: SQL text and how to bind a request's variables."""

    sql: str
    binders: tuple[Binder, ...]

    def bind(self, variables: Mapping[str, Any]) -> list[Any]:
        """Positional values after the fixed three; raises :class:`Fallback`."""
        return [binder(variables) for binder in self.binders]


# --- the SQL vocabulary ----------------------------------------------------------------


def _gid(type_name: str) -> Callable[[str], str]:
    # strawberry's GlobalID: standard base64 of "Type:id". PostgreSQL's encode()
    # breaks lines every 76 characters, i.e. for inputs over 57 bytes.
    def sql(a: str) -> str:
        expr = f"encode(convert_to('{type_name}:' || {a}.id::text, 'UTF8'), 'base64')"
        if len(type_name) + 1 + 36 > 57:
            expr = f"replace({expr}, E'\\n', '')"
        return expr

    return sql


def _col(name: str) -> Callable[[str], str]:
    return lambda a: f"{a}.{name}"


def _float(name: str) -> Callable[[str], str]:
    """A float column without a finiteness constraint. GraphQL's Float cannot carry
    NaN or infinity: the resolvers would answer with a field error, so the statement
    fails instead (not constant-foldable: the cast depends on the row) and the request
    falls back to them."""
    return lambda a: (
        f"CASE WHEN abs({a}.{name}) < 'Infinity'::float8 THEN {a}.{name} "
        f"WHEN {a}.{name} IS NULL THEN NULL ELSE ('non-finite ' || {a}.{name})::float8 END"
    )


def _datetime(name: str) -> Callable[[str], str]:
    # datetime.isoformat() of a UTC timestamp: microseconds only when non-zero.
    def sql(a: str) -> str:
        x = f"{a}.{name}"
        return (
            f"to_char({x} AT TIME ZONE 'UTC', CASE WHEN date_trunc('second', {x}) = {x} "
            """THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' """
            """ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)"""
        )

    return sql


def _enum_case(column: str, graphql_enum: GraphQLEnumType) -> Callable[[str], str]:
    whens = []
    for name, value in graphql_enum.values.items():
        stored = value.value.value if isinstance(value.value, Enum) else value.value
        if not isinstance(stored, str) or "'" in stored:
            raise Unsupported(f"enum {graphql_enum.name}")
        whens.append(f"WHEN '{stored}' THEN '{name}'")
    return lambda a: f"CASE {a}.{column} {' '.join(whens)} END"


@dataclass(frozen=True)
class ToOne:
    target: str
    fk: str


@dataclass(frozen=True)
class ToMany:
    target: str
    # FROM/WHERE joining the child alias {c} to the parent alias {p}; {d} a spare alias.
    source: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class Paged:
    target: str
    where: str  # child alias {c}, parent alias {p}
    key: str  # the default sort key (then id), as the resolvers' keyset pages


@dataclass(frozen=True)
class Table:
    name: str
    leaves: dict[str, Callable[[str], str]]
    enums: dict[str, str] = field(default_factory=dict)  # field → column
    relations: dict[str, ToOne | ToMany | Paged] = field(default_factory=dict)
    visible_by: str = "project_id"  # the column that names the row's project


_LIVE = "{c}.deleted_at IS NULL"

TABLES: dict[str, Table] = {
    "Parameter": Table(
        "parameters",
        {
            "id": _gid("Parameter"),
            "symbol": _col("symbol"),
            "name": _col("name"),
            "description": _col("description"),
            # value_number is CHECKed finite in the database.
            "number": _col("value_number"),
            "boolean": _col("value_bool"),
            "text": _col("value_text"),
            "unit": _col("unit"),
            "uncertainty": _float("uncertainty"),
            "formula": _col("formula"),
            "version": _col("version"),
            "isDerived": lambda a: f"({a}.formula IS NOT NULL)",
            "createdAt": _datetime("created_at"),
            "updatedAt": _datetime("updated_at"),
        },
        {"valueKind": "value_kind"},
        {
            "component": ToOne("Component", "component_id"),
            "project": ToOne("Project", "project_id"),
            "dependencies": ToMany(
                "Parameter",
                "FROM parameter_dependencies {d} JOIN parameters {c} ON {c}.id = {d}.depends_on_id"
                " WHERE {d}.parameter_id = {p}.id AND " + _LIVE,
                ("symbol", "id"),
            ),
            "dependents": ToMany(
                "Parameter",
                "FROM parameter_dependencies {d} JOIN parameters {c} ON {c}.id = {d}.parameter_id"
                " WHERE {d}.depends_on_id = {p}.id AND " + _LIVE,
                ("symbol", "id"),
            ),
            "requirements": ToMany(
                "Requirement",
                "FROM requirements {c} WHERE {c}.rule_parameter_id = {p}.id AND " + _LIVE,
                ("key", "id"),
            ),
        },
    ),
    "Component": Table(
        "components",
        {
            "id": _gid("Component"),
            "tag": _col("tag"),
            "name": _col("name"),
            "description": _col("description"),
            "version": _col("version"),
            "createdAt": _datetime("created_at"),
            "updatedAt": _datetime("updated_at"),
        },
        {},
        {
            "project": ToOne("Project", "project_id"),
            "parent": ToOne("Component", "parent_id"),
            "children": ToMany(
                "Component",
                "FROM components {c} WHERE {c}.parent_id = {p}.id AND " + _LIVE,
                ("tag", "id"),
            ),
            "parameters": Paged("Parameter", "{c}.component_id = {p}.id AND " + _LIVE, "symbol"),
        },
    ),
    "Requirement": Table(
        "requirements",
        {
            "id": _gid("Requirement"),
            "key": _col("key"),
            "title": _col("title"),
            "text": _col("text"),
            "margin": _float("margin"),
            "version": _col("version"),
            "createdAt": _datetime("created_at"),
            "updatedAt": _datetime("updated_at"),
        },
        {
            "priority": "priority",
            "status": "status",
            "verificationMethod": "verification_method",
            "compliance": "compliance",
        },
        {
            "parameter": ToOne("Parameter", "rule_parameter_id"),
            "parent": ToOne("Requirement", "parent_id"),
            "children": ToMany(
                "Requirement",
                "FROM requirements {c} WHERE {c}.parent_id = {p}.id AND " + _LIVE,
                ("key", "id"),
            ),
        },
    ),
    "Project": Table(
        "projects",
        {
            "id": _gid("Project"),
            "name": _col("name"),
            "description": _col("description"),
            "eventSequence": _col("event_sequence"),
            "createdAt": _datetime("created_at"),
            "updatedAt": _datetime("updated_at"),
        },
        {},
        {
            "components": Paged("Component", "{c}.project_id = {p}.id AND " + _LIVE, "tag"),
            "parameters": Paged("Parameter", "{c}.project_id = {p}.id AND " + _LIVE, "symbol"),
            "requirements": Paged("Requirement", "{c}.project_id = {p}.id AND " + _LIVE, "key"),
        },
        visible_by="id",
    ),
}

# Arguments of a connection the plan covers only when absent or null.
_NULL_ONLY_ARGS = frozenset({"after", "last", "before", "filter", "orderBy"})

# The projects the caller may see, as app.auth.access.visible_projects computes them.
_VISIBLE = (
    "vis AS MATERIALIZED (SELECT vp.id FROM projects vp"
    " WHERE vp.organization_id = $1 AND vp.deleted_at IS NULL AND ($3 OR EXISTS ("
    "SELECT 1 FROM project_members vm WHERE vm.project_id = vp.id AND (vm.user_id = $2"
    " OR vm.team_id IN (SELECT vt.team_id FROM team_members vt WHERE vt.user_id = $2)))))"
)
# The statement answers only on a connection acting as this very tenant under the
# row-level-security role (app.graphql.readpool pins it); otherwise it yields NULL.
_GUARD = (
    "current_user = 'threadline_app' AND current_setting('threadline.org_id') = $1::text"
    " AND current_setting('threadline.user_id') = $2::text"
)
# ... and only while the bearer token is still what its last lookup found (same checks
# as app.auth.service._principal, in the same snapshot as the data); otherwise ''.
_TOKEN_VALID = (
    "EXISTS (SELECT 1 FROM api_tokens gt JOIN users gu ON gu.id = gt.user_id"
    " WHERE gt.token_hash = $4 AND gt.id = $5 AND gt.user_id = $2 AND gt.revoked_at IS NULL"
    " AND (gt.expires_at IS NULL OR gt.expires_at > now()) AND gu.organization_id = $1"
    " AND gu.is_admin = $3 AND gu.is_active AND gu.deleted_at IS NULL)"
)
# json_build_object takes at most 100 arguments.
_MAX_KEYS = 50


# --- the compiler ----------------------------------------------------------------------


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        *,
        default_page_size: int,
        max_page_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables: dict[str, TypeNode] = {
            v.variable.name.value: v.type for v in operation.variable_definitions or ()
        }
        for definition in operation.variable_definitions or ():
            if definition.default_value is not None or definition.directives:
                raise Unsupported("variable default or directive")
        self.operation = operation
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self.binders: list[Binder] = []
        self.checks: list[Binder] = []
        self.aliases = 0

    # -- helpers

    def alias(self) -> str:
        self.aliases += 1
        return f"t{self.aliases}"

    def param(self, binder: Binder) -> str:
        self.binders.append(binder)
        return f"${_FIXED_PARAMS + len(self.binders)}"

    def applies(self, condition: str, type_: GraphQLObjectType) -> bool:
        if condition == type_.name:
            return True
        named = self.schema.get_type(condition)
        if isinstance(named, GraphQLInterfaceType):
            return named in type_.interfaces
        if isinstance(named, GraphQLUnionType):
            return type_ in named.types
        return False

    def collect(
        self,
        type_: GraphQLObjectType,
        selection_sets: list[SelectionSetNode],
        out: dict[str, list[FieldNode]] | None = None,
    ) -> dict[str, list[FieldNode]]:
        """Fields by response key, in order (graphql's CollectFields without directives)."""
        out = {} if out is None else out
        for selection_set in selection_sets:
            for sel in selection_set.selections:
                if sel.directives:
                    raise Unsupported("directives")
                if isinstance(sel, FieldNode):
                    out.setdefault((sel.alias or sel.name).value, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    cond = sel.type_condition
                    if cond is None or self.applies(cond.name.value, type_):
                        self.collect(type_, [sel.selection_set], out)
                elif isinstance(sel, FragmentSpreadNode):
                    frag = self.fragments[sel.name.value]
                    if frag.directives:
                        raise Unsupported("directives")
                    if self.applies(frag.type_condition.name.value, type_):
                        self.collect(type_, [frag.selection_set], out)
        return out

    def conditions(self, selection_sets: list[SelectionSetNode]) -> set[str]:
        """Type conditions named anywhere at the top of these selection sets."""
        names: set[str] = set()
        for selection_set in selection_sets:
            for sel in selection_set.selections:
                if isinstance(sel, InlineFragmentNode):
                    if sel.type_condition is not None:
                        names.add(sel.type_condition.name.value)
                    names |= self.conditions([sel.selection_set])
                elif isinstance(sel, FragmentSpreadNode):
                    frag = self.fragments[sel.name.value]
                    names.add(frag.type_condition.name.value)
                    names |= self.conditions([frag.selection_set])
        return names

    def object_type(self, name: str) -> GraphQLObjectType:
        type_ = self.schema.get_type(name)
        assert isinstance(type_, GraphQLObjectType)
        return type_

    @staticmethod
    def arguments(node: FieldNode) -> dict[str, ValueNode]:
        return {a.name.value: a.value for a in node.arguments or ()}

    @staticmethod
    def selection_sets(nodes: list[FieldNode]) -> list[SelectionSetNode]:
        return [n.selection_set for n in nodes if n.selection_set is not None]

    def json_object(self, pairs: list[tuple[str, str]]) -> str:
        if len(pairs) > _MAX_KEYS:
            raise Unsupported("too many keys in one object")
        if not pairs:
            return "json_build_object()"
        return "json_build_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    # -- arguments

    def variable_type(self, name: str) -> tuple[str, bool]:
        node = self.variables.get(name)
        if node is None:
            raise Unsupported("undefined variable")
        non_null = isinstance(node, NonNullTypeNode)
        inner = node.type if isinstance(node, NonNullTypeNode) else node
        if isinstance(inner, ListTypeNode) or not isinstance(inner, NamedTypeNode):
            raise Unsupported("list variable")
        return inner.name.value, non_null

    def id_param(self, value: ValueNode, expected: str) -> str:
        """The SQL parameter of a global id argument that must name ``expected``: checked
        now for a literal, per request for a variable (another type → the resolvers)."""
        if isinstance(value, StringValueNode):
            node_id = decode_id(value.value, expected)
            if node_id is None:
                raise Unsupported("id of another type")

            def constant(_variables: Mapping[str, Any], u: uuid.UUID = node_id) -> Any:
                return u

            return self.param(constant)
        if isinstance(value, VariableNode):
            name = value.name.value
            if self.variable_type(name)[0] != "ID":
                raise Unsupported("id variable type")

            def bind(variables: Mapping[str, Any], n: str = name, t: str = expected) -> Any:
                raw = variables.get(n)
                node_id = decode_id(raw, t) if isinstance(raw, str) else None
                if node_id is None:
                    raise Fallback
                return node_id

            return self.param(bind)
        raise Unsupported("id argument")

    def page_size(self, args: dict[str, ValueNode]) -> str:
        for name, value in args.items():
            if name == "first":
                continue
            if name not in _NULL_ONLY_ARGS:
                raise Unsupported(f"argument {name}")
            if isinstance(value, NullValueNode):
                continue
            if isinstance(value, VariableNode):
                self.variable_type(value.name.value)

                def null_only(variables: Mapping[str, Any], n: str = value.name.value) -> Any:
                    if variables.get(n) is not None:
                        raise Fallback
                    return None

                # Checked per request; nothing of it goes into the SQL.
                self.checks.append(null_only)
                continue
            raise Unsupported(f"argument {name} given")
        first = args.get("first")
        if first is None or isinstance(first, NullValueNode):
            return str(self.default_page_size)
        value = first
        if isinstance(value, IntValueNode):
            n = int(value.value)
            if not 0 <= n <= self.max_page_size:
                raise Unsupported("page size out of range")
            return str(n)
        if isinstance(value, VariableNode):
            name = value.name.value
            if self.variable_type(name)[0] != "Int":
                raise Unsupported("first variable type")
            default, maximum = self.default_page_size, self.max_page_size

            def bind(variables: Mapping[str, Any], n: str = name) -> Any:
                raw = variables.get(n)
                if raw is None:
                    return default
                if type(raw) is not int or not 0 <= raw <= maximum:
                    raise Fallback
                return raw

            return self.param(bind) + "::int"
        raise Unsupported("first argument")

    # -- selections

    def select(self, type_: GraphQLObjectType, table: Table, a: str, nodes: list[FieldNode]) -> str:
        """JSON of one row (alias ``a``) of ``table`` for the merged selections."""
        pairs: list[tuple[str, str]] = []
        for key, fields in self.collect(type_, self.selection_sets(nodes)).items():
            name = fields[0].name.value
            if name == "__typename":
                pairs.append((key, f"'{type_.name}'"))
                continue
            if any(f.arguments for f in fields) and name not in table.relations:
                raise Unsupported(f"arguments on {type_.name}.{name}")
            if name in table.leaves:
                pairs.append((key, table.leaves[name](a)))
            elif name in table.enums:
                field_type = get_named_type(type_.fields[name].type)
                assert isinstance(field_type, GraphQLEnumType)
                pairs.append((key, _enum_case(table.enums[name], field_type)(a)))
            elif name in table.relations:
                pairs.append((key, self.relation(type_, table.relations[name], a, fields)))
            else:
                raise Unsupported(f"{type_.name}.{name}")
        return self.json_object(pairs)

    def relation(
        self,
        parent_type: GraphQLObjectType,
        rel: ToOne | ToMany | Paged,
        p: str,
        fields: list[FieldNode],
    ) -> str:
        target_type = self.object_type(rel.target)
        target = TABLES[rel.target]
        c = self.alias()
        if isinstance(rel, ToOne):
            if fields[0].arguments:
                raise Unsupported("arguments")
            body = self.select(target_type, target, c, fields)
            return (
                f"(SELECT {body} FROM {target.name} {c} WHERE {c}.id = {p}.{rel.fk}"
                f" AND {c}.deleted_at IS NULL AND {c}.{target.visible_by} IN (SELECT id FROM vis))"
            )
        if isinstance(rel, ToMany):
            if fields[0].arguments:
                raise Unsupported("arguments")
            body = self.select(target_type, target, c, fields)
            source = rel.source.format(c=c, p=p, d=self.alias())
            order = ", ".join(f"{c}.{col}" for col in rel.order)
            return f"(SELECT coalesce(json_agg({body} ORDER BY {order}), '[]'::json) {source})"
        return self.connection(parent_type, rel, p, fields)

    def sub_object(
        self,
        parent: GraphQLObjectType,
        field_name: str,
        nodes: list[FieldNode],
        leaf: Callable[[str, list[FieldNode]], str],
    ) -> str:
        """JSON of a small object inside a connection (an edge, pageInfo): ``leaf``
        gives the SQL of each selected field by name."""
        type_ = get_named_type(parent.fields[field_name].type)
        assert isinstance(type_, GraphQLObjectType)
        pairs = []
        for key, fields in self.collect(type_, self.selection_sets(nodes)).items():
            name = fields[0].name.value
            pairs.append((key, f"'{type_.name}'" if name == "__typename" else leaf(name, fields)))
        return self.json_object(pairs)

    def connection(
        self, parent_type: GraphQLObjectType, rel: Paged, p: str, fields: list[FieldNode]
    ) -> str:
        connection_type = get_named_type(parent_type.fields[fields[0].name.value].type)
        assert isinstance(connection_type, GraphQLObjectType)
        n = self.page_size(self.arguments(fields[0]))
        target = TABLES[rel.target]
        target_type = self.object_type(rel.target)
        c = self.alias()
        where = rel.where.format(c=c, p=p)
        order = f"{c}.{rel.key}, {c}.id"
        # Only the page's rows are turned into JSON: n + 1 rows tell hasNextPage.
        page = (
            f"(SELECT {c}.*, row_number() OVER (ORDER BY {order}) AS _rn"
            f" FROM {target.name} {c} WHERE {where} ORDER BY {order} LIMIT {n} + 1) {c}"
        )
        in_page = f"FILTER (WHERE {c}._rn <= {n})"
        cursor = (
            f"rtrim(translate(encode(convert_to('[' || to_json({c}.{rel.key})::text || ',\"'"
            f" || {c}.id::text || '\"]', 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"
        )
        info_sql = {
            "hasNextPage": f"count(*) > {n}",
            "hasPreviousPage": "false",  # only first pages are compiled
            "startCursor": f"(array_agg({cursor} ORDER BY {c}._rn) {in_page})[1]",
            "endCursor": f"(array_agg({cursor} ORDER BY {c}._rn DESC) {in_page})[1]",
        }

        def page_list(body: str) -> str:
            return f"coalesce(json_agg({body} ORDER BY {c}._rn) {in_page}, '[]'::json)"

        def edge_field(name: str, edge_fields: list[FieldNode]) -> str:
            if name == "cursor":
                return cursor
            if name == "node":
                return self.select(target_type, target, c, edge_fields)
            raise Unsupported(f"edge field {name}")

        def info_field(name: str, _fields: list[FieldNode]) -> str:
            if name not in info_sql:
                raise Unsupported(f"pageInfo field {name}")
            return info_sql[name]

        pairs: list[tuple[str, str]] = []
        for key, sub in self.collect(connection_type, self.selection_sets(fields)).items():
            name = sub[0].name.value
            if name == "__typename":
                pairs.append((key, f"'{connection_type.name}'"))
            elif name == "nodes":
                pairs.append((key, page_list(self.select(target_type, target, c, sub))))
            elif name == "edges":
                edge = self.sub_object(connection_type, "edges", sub, edge_field)
                pairs.append((key, page_list(edge)))
            elif name == "pageInfo":
                pairs.append((key, self.sub_object(connection_type, "pageInfo", sub, info_field)))
            elif name == "totalCount":
                x = self.alias()
                pairs.append(
                    (
                        key,
                        f"(SELECT count(*) FROM {target.name} {x}"
                        f" WHERE {rel.where.format(c=x, p=p)})",
                    )
                )
            else:
                raise Unsupported(f"connection field {name}")
        return f"(SELECT {self.json_object(pairs)} FROM {page})"

    def root(self) -> str:
        query_type = self.schema.query_type
        assert query_type is not None
        pairs: list[tuple[str, str]] = []
        for key, fields in self.collect(query_type, [self.operation.selection_set]).items():
            name = fields[0].name.value
            if name == "__typename":
                pairs.append((key, f"'{query_type.name}'"))
                continue
            if name not in ("node", "project"):
                raise Unsupported(f"Query.{name}")
            args = self.arguments(fields[0])
            if set(args) != {"id"}:
                raise Unsupported("arguments")
            if name == "project":
                type_name = "Project"
            else:
                named = self.conditions(self.selection_sets(fields)) & set(TABLES)
                if len(named) != 1:
                    raise Unsupported("node without exactly one compiled type")
                (type_name,) = named
            param = self.id_param(args["id"], type_name)
            table = TABLES[type_name]
            a = self.alias()
            body = self.select(self.object_type(type_name), table, a, fields)
            pairs.append(
                (
                    key,
                    f"(SELECT {body} FROM {table.name} {a} WHERE {a}.id = {param}::uuid"
                    f" AND {a}.deleted_at IS NULL AND {a}.{table.visible_by} IN"
                    " (SELECT id FROM vis))",
                )
            )
        data = self.json_object(pairs)
        return (
            f"WITH {_VISIBLE} SELECT CASE WHEN {_GUARD} THEN"
            f" CASE WHEN {_TOKEN_VALID} THEN ({data})::text ELSE '' END END"
        )


@dataclass(frozen=True)
class CompiledOperation:
    plan: Plan
    checks: tuple[Binder, ...]
    # The operation's own name (what strawberry reports when the request names none).
    operation_name: str | None

    def bind(self, variables: Mapping[str, Any]) -> list[Any]:
        for check in self.checks:
            check(variables)
        return self.plan.bind(variables)


def compile_operation(
    schema: GraphQLSchema,
    query: str,
    operation_name: str | None,
    *,
    default_page_size: int,
    max_page_size: int,
) -> CompiledOperation:
    """Compile a (valid) query document; raises :class:`Unsupported`."""
    document = parse(query)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if len(operations) != 1:
            raise Unsupported("ambiguous operation")
        operation = operations[0]
    else:
        found = [o for o in operations if o.name is not None and o.name.value == operation_name]
        if len(found) != 1:
            raise Unsupported("unknown operation")
        operation = found[0]
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise Unsupported("not a plain query")
    compiler = _Compiler(
        schema,
        document,
        operation,
        default_page_size=default_page_size,
        max_page_size=max_page_size,
    )
    sql = compiler.root()
    return CompiledOperation(
        Plan(sql, tuple(compiler.binders)),
        tuple(compiler.checks),
        operation.name.value if operation.name else None,
    )


# --- the cache of plans ------------------------------------------------------------------

_MAX_PLANS = 512
# (query, operation name) → plan, or None for documents that are not compilable.
_PLANS: dict[tuple[str, str | None], CompiledOperation | None] = {}


def cached(query: str, operation_name: str | None) -> CompiledOperation | bool | None:
    """The plan for a document; None if it is not compilable; False if not yet seen."""
    return _PLANS.get((query, operation_name), False)


def remember(
    schema: GraphQLSchema,
    query: str,
    operation_name: str | None,
    *,
    default_page_size: int,
    max_page_size: int,
) -> CompiledOperation | None:
    """Compile after a successful normal execution (so the document is valid)."""
    try:
        compiled: CompiledOperation | None = compile_operation(
            schema,
            query,
            operation_name,
            default_page_size=default_page_size,
            max_page_size=max_page_size,
        )
    except (Unsupported, KeyError):
        compiled = None
    bounded.put(_PLANS, (query, operation_name), compiled, _MAX_PLANS)
    return compiled


def forget_all() -> None:
    _PLANS.clear()
