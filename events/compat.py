"""Backward-compatibility check of Avro schemas (new reader, old writer).

A schema change is backward compatible when data written with the previous schema can
be read with the new one, following the Avro specification's resolution rules: new
fields need defaults, types may only widen (int -> long -> float -> double,
string <-> bytes), enums may only gain symbols (or have a default), unions may only
gain branches. The schema test runs this against the committed previous version.
"""

from __future__ import annotations

from typing import Any

PROMOTIONS: dict[str, set[str]] = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
    "boolean": {"boolean"},
    "null": {"null"},
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"]) if not isinstance(schema["type"], dict | list) else "wrapped"
    return str(schema)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def incompatibilities(reader: Any, writer: Any, path: str = "$") -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (empty list = compatible)."""
    rk, wk = _kind(reader), _kind(writer)
    if rk == "wrapped":
        return incompatibilities(reader["type"], writer, path)
    if wk == "wrapped":
        return incompatibilities(reader, writer["type"], path)
    if wk == "union":
        problems: list[str] = []
        for i, branch in enumerate(writer):
            if not _readable_by_some(reader, branch):
                problems.append(f"{path}: writer union branch {i} ({_kind(branch)}) has no reader")
        return problems
    if rk == "union":
        if _readable_by_some(reader, writer):
            return []
        return [f"{path}: no branch of the reader union reads writer type {wk}"]
    if wk in PROMOTIONS:
        ok = rk in PROMOTIONS[wk]
        return [] if ok else [f"{path}: {wk} cannot be read as {rk}"]
    if rk != wk:
        return [f"{path}: {wk} cannot be read as {rk}"]
    if rk == "record":
        return _records(reader, writer, path)
    if rk == "enum":
        if _short(reader["name"]) != _short(writer["name"]):
            return [f"{path}: enum renamed {writer['name']} -> {reader['name']}"]
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{path}: enum symbols removed without a default: {sorted(missing)}"]
        return []
    if rk == "array":
        return incompatibilities(reader["items"], writer["items"], f"{path}[]")
    if rk == "map":
        return incompatibilities(reader["values"], writer["values"], f"{path}{{}}")
    if rk == "fixed" and reader.get("size") != writer.get("size"):
        return [f"{path}: fixed size changed"]
    return []


def _readable_by_some(reader_union: Any, writer: Any) -> bool:
    branches = reader_union if isinstance(reader_union, list) else [reader_union]
    return any(not incompatibilities(b, writer) for b in branches)


def _records(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    names = {_short(reader["name"]), *(_short(a) for a in reader.get("aliases", []))}
    if _short(writer["name"]) not in names:
        return [f"{path}: record renamed {writer['name']} -> {reader['name']}"]
    written = {f["name"]: f for f in writer["fields"]}
    problems: list[str] = []
    for field in reader["fields"]:
        candidates = [field["name"], *field.get("aliases", [])]
        source = next((written[n] for n in candidates if n in written), None)
        where = f"{path}.{field['name']}"
        if source is None:
            if "default" not in field:
                problems.append(f"{where}: new field without a default")
            continue
        problems.extend(incompatibilities(field["type"], source["type"], where))
    return problems
