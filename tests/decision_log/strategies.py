"""Hypothesis strategies for JSON-like request values, shared by the decision-log tests."""

from __future__ import annotations

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=40,
)
entities = st.fixed_dictionaries(
    {"type": st.sampled_from(["User", "Service", "Doc", "Nope"]), "id": st.text(max_size=5)},
    optional={"attributes": json_values | st.dictionaries(st.sampled_from(["email", "profile", "keys"]), json_values)},
)
