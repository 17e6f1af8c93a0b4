"""Helpers for the policy-test tests: a small policy set with `or`, `unless` and role grants."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

# Line numbers matter: tests check the `file:line` of rules and branches.
POLICY = """\
principal entity User { team: string; admin: bool; roles: set<string>; }
entity Doc { team: string; locked: bool; }
context { vpn: bool; }
actions Doc { read, write }

role reader { grant read on Doc; }
role writer extends reader { grant write on Doc; }
roles of User from principal.roles;

permit team_read
  action read
  resource Doc
  when principal.team == resource.team or principal.admin;

forbid locked_write
  action write
  when resource.locked
  unless principal.admin;

forbid off_vpn
  unless context.vpn;
"""

FIXTURES = """\
[defaults]
now = 2026-11-25T10:00:00Z
context = "vpn"

[principals.ann]
type = "User"
attributes = { team = "red", admin = false, roles = [] }

[principals.wes]
extends = "ann"
attributes = { roles = ["writer"] }

[principals.root]
extends = "ann"
attributes = { team = "blue", admin = true }

[resources.red_doc]
type = "Doc"
id = "d1"
attributes = { team = "red", locked = false }

[resources.locked_doc]
type = "Doc"
id = "d2"
attributes = { team = "red", locked = true }

[contexts.vpn]
vpn = true

[contexts.cafe]
vpn = false
"""


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A directory holding POLICY as p.pdp; tests add their own *_test.toml files."""
    return _write(tmp_path / "policies", {"p.pdp": POLICY})


@pytest.fixture
def write() -> Callable[[Path, dict[str, str]], Path]:
    """write(directory, {relative name: text}): files dedented and written; returns the directory."""
    return _write


@pytest.fixture
def policy_text() -> str:
    """POLICY: one permit with `or`, forbids with `unless`, roles reader < writer."""
    return POLICY


@pytest.fixture
def fixtures_toml() -> str:
    """Fixtures for POLICY (people ann, wes the writer, root the admin; red_doc, locked_doc; vpn, cafe)."""
    return FIXTURES
