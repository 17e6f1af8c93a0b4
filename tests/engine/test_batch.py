"""Engine.decide_batch answers exactly what decide answers for each full request."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from pdp import Engine

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = [
    {"type": "Document", "id": "doc-plan"},
    {"type": "Document", "id": "doc-merger"},
    {"type": "Document", "id": "doc-handbook"},
    {"type": "Project", "id": "proj-apollo"},
    {"type": "Project", "id": "proj-old"},
    {"type": "AdminConsole", "id": "acme-console"},
    {"type": "Document", "id": "unknown-doc"},  # not in the data and missing attributes: an error
    {"type": "Nope", "id": "x"},  # unknown type: an error naming the field
]
ACTIONS = ["read", "write", "delete", "share", "archive", "view_audit", "fly"]


@pytest.mark.parametrize("order", ["grouped", "shuffled"])
def test_batch_equals_one_by_one(order: str) -> None:
    """Grouped: a resource's actions follow one another (the engine checks the resource once for
    them); shuffled: they do not."""
    engine = Engine.load(ROOT / "policies")
    for path in sorted((ROOT / "policies" / "requests").glob("*.json")):
        request = json.loads(path.read_text())
        items = list(itertools.product(RESOURCES, ACTIONS))
        if order == "shuffled":
            random.Random(path.name).shuffle(items)
        batch = engine.decide_batch(request["principal"], request.get("context"), items)
        for (resource, action), got in zip(items, batch, strict=True):
            single = {"principal": request["principal"], "action": action, "resource": resource}
            if "context" in request:
                single["context"] = request["context"]
            want = engine.decide(single)
            assert (got.allowed, got.reasons, got.obligations, got.errors) == (
                want.allowed,
                want.reasons,
                want.obligations,
                want.errors,
            ), (path.name, resource, action)


def test_a_bad_principal_denies_every_item_with_its_error() -> None:
    engine = Engine.load(ROOT / "policies")
    batch = engine.decide_batch({"type": "User", "id": 5}, None, [(RESOURCES[0], "read"), (RESOURCES[1], "read")])
    assert [(d.allowed, [e.field for e in d.errors]) for d in batch] == [(False, ["principal.id"])] * 2
