"""Entity data files: entities the caller cannot supply, named lists, role bindings.

A data file is JSON beside the policies:

    {"entities": [{"type": "Document", "id": "d1", "attributes": {...},
                   "parents": [{"type": "Folder", "id": "f1"}]}],
     "constants": {"blocked_ips": ["203.0.113.0/24"]}}

Attributes are type-checked against the schema when loaded. During a decision the
stored attributes of an entity win over the ones the request carries: the data files
are the policy owner's source of truth, and a caller must not be able to claim, say,
ownership of a document by sending `owner` itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_lang.convert import ConversionError, record_converter
from policy_lang.errors import Diagnostic, PolicyDataError
from policy_lang.schema import Schema
from policy_lang.spans import Span


@dataclass(frozen=True, slots=True)
class DataFile:
    path: str
    content: Mapping[str, Any]
    text: str = ""

    def locate(self, entity: Any, field: str | None = None) -> Span:
        """Best effort: the line of an entity's id (and of a field after it) in the file."""
        offset = 0
        if isinstance(entity, dict) and isinstance(entity.get("id"), str):
            found = self.text.find(json.dumps(entity["id"]))
            offset = max(found, 0)
            if field is not None:
                after = self.text.find(json.dumps(field), offset)
                offset = after if after >= 0 else offset
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return Span(self.path, line, col, line, col + 1)


@dataclass(slots=True)
class EntityStore:
    attributes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "Type::id" -> direct parents
    ancestors: dict[str, frozenset[str]] = field(default_factory=dict)  # "Type::id" -> transitive parents

    def __len__(self) -> int:
        return len(self.attributes)


def read_data_file(path: str, text: str) -> DataFile:
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyDataError(
            [
                Diagnostic(
                    "invalid_data",
                    f"not valid JSON: {exc.msg}",
                    Span(path, exc.lineno, exc.colno, exc.lineno, exc.colno + 1),
                )
            ]
        ) from None
    if not isinstance(content, dict) or not set(content) <= {"entities", "constants"}:
        raise PolicyDataError(
            [
                Diagnostic(
                    "invalid_data",
                    "a data file is an object with `entities` and/or `constants`",
                    Span(path, 1, 1, 1, 2),
                )
            ]
        )
    return DataFile(path, content, text)


def constants_of(files: Sequence[DataFile]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in files:
        out.update(f.content.get("constants", {}) or {})
    return out


def entity_ref(value: Any) -> str | None:
    """`{"type": "Group", "id": "eng"}` or `"Group::eng"` -> `"Group::eng"`."""
    if isinstance(value, dict) and isinstance(value.get("type"), str) and isinstance(value.get("id"), str):
        return f"{value['type']}::{value['id']}"
    if isinstance(value, str) and "::" in value:
        return value
    return None


def build_store(files: Sequence[DataFile], schema: Schema) -> EntityStore:
    store = EntityStore()
    problems: list[Diagnostic] = []
    converters = {name: record_converter(t.record, partial=True) for name, t in schema.entities.items()}
    for f in files:
        entities = f.content.get("entities", []) or []
        if not isinstance(entities, list):
            problems.append(_problem(f.path, "`entities` must be a list"))
            continue
        for i, item in enumerate(entities):
            where = f"entities[{i}]"
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("type"), str)
                or not isinstance(item.get("id"), str)
            ):
                problems.append(_located(f, item, None, f"{where}: an entity needs string `type` and `id`"))
                continue
            etype, eid = item["type"], item["id"]
            if etype not in converters:
                problems.append(_located(f, item, None, f"{where}: unknown entity type `{etype}`"))
                continue
            try:
                attrs = converters[etype](item.get("attributes", {}) or {})
            except ConversionError as exc:
                field = exc.parts[0] if exc.parts else None
                problems.append(_located(f, item, field, f"{exc.path(where + '.attributes')}: {exc.message}"))
                continue
            if (etype, eid) in store.attributes:
                problems.append(_located(f, item, None, f"{where}: entity `{etype}::{eid}` is defined twice"))
                continue
            store.attributes[(etype, eid)] = attrs
            refs = []
            for j, parent in enumerate(item.get("parents", []) or []):
                ref = entity_ref(parent)
                if ref is None:
                    message = f'{where}.parents[{j}]: expected {{"type": ..., "id": ...}}'
                    problems.append(_located(f, item, "parents", message))
                else:
                    refs.append(ref)
            store.parents[f"{etype}::{eid}"] = tuple(refs)
    if problems:
        raise PolicyDataError(problems)
    store.ancestors = _close(store.parents)
    return store


def _close(parents: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    """Transitive parents, iteratively; a cycle in the data simply closes on itself."""
    closed: dict[str, frozenset[str]] = {}
    for start in parents:
        seen: set[str] = set()
        stack = list(parents.get(start, ()))
        while stack:
            ref = stack.pop()
            if ref in seen:
                continue
            seen.add(ref)
            stack.extend(parents.get(ref, ()))
        closed[start] = frozenset(seen)
    return closed


def _located(f: DataFile, entity: Any, field: str | None, message: str) -> Diagnostic:
    return Diagnostic("invalid_data", message, f.locate(entity, field))


def _problem(path: str, message: str) -> Diagnostic:
    return Diagnostic("invalid_data", message, Span(path, 1, 1, 1, 2))
