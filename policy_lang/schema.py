"""The schema's types and the Schema built from the declarations of every file.

The same type objects serve the checker (is this expression well typed?) and the
engine (convert a JSON value from a request or a data file into its runtime form).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Prim:
    name: str  # string, int, bool, ip, datetime, duration

    def __str__(self) -> str:
        return self.name


STRING, INT, BOOL = Prim("string"), Prim("int"), Prim("bool")
IP, DATETIME, DURATION = Prim("ip"), Prim("datetime"), Prim("duration")
PRIMITIVES = {p.name: p for p in (STRING, INT, BOOL, IP, DATETIME, DURATION)}


@dataclass(frozen=True, slots=True)
class EnumType:
    name: str
    members: tuple[str, ...]
    ordered: bool

    def rank(self, member: str) -> int:
        return self.members.index(member)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SetOf:
    element: Type

    def __str__(self) -> str:
        return f"set<{self.element}>"


@dataclass(frozen=True, slots=True)
class MapOf:
    value: Type

    def __str__(self) -> str:
        return f"map<string, {self.value}>"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Type
    optional: bool = False
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    fields: tuple[Field, ...]

    def get(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def __str__(self) -> str:
        return "{" + ", ".join(f"{f.name}{'?' if f.optional else ''}: {f.type}" for f in self.fields) + "}"


@dataclass(frozen=True, slots=True)
class EntityType:
    name: str
    record: Record
    parents: tuple[str, ...] = ()
    is_principal: bool = False

    def __str__(self) -> str:
        return self.name


# Types that only exist inside expressions.
@dataclass(frozen=True, slots=True)
class Special:
    name: str  # window, role, empty set

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class EntityRefType:
    entity: str

    def __str__(self) -> str:
        return f"{self.entity} reference"


WINDOW, ROLE, EMPTY_SET = Special("window"), Special("role"), Special("empty set")

Type = Prim | EnumType | SetOf | MapOf | Record | EntityType | Special | EntityRefType


def compatible(a: Type, b: Type) -> bool:
    """Can values of these two types be compared with `==`?"""
    if a == b:
        return True
    if EMPTY_SET in (a, b):
        return isinstance(a, SetOf) or isinstance(b, SetOf) or a == b
    if isinstance(a, SetOf) and isinstance(b, SetOf):
        return compatible(a.element, b.element)
    return False


@dataclass(slots=True)
class Schema:
    entities: dict[str, EntityType] = field(default_factory=dict)
    enums: dict[str, EnumType] = field(default_factory=dict)
    context: Record = field(default_factory=lambda: Record(()))
    actions: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def principal_types(self) -> tuple[str, ...]:
        marked = tuple(name for name, e in self.entities.items() if e.is_principal)
        return marked or tuple(self.entities)

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(name for name in self.entities if self.actions.get(name))

    def all_actions(self) -> frozenset[str]:
        return frozenset().union(*self.actions.values()) if self.actions else frozenset()
