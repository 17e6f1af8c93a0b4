"""The decision point: the in-process engine, and (later) the server, cache and decision log."""

from pdp.decision import Decision, DecisionError
from pdp.engine import Engine

__all__ = ["Decision", "DecisionError", "Engine"]
