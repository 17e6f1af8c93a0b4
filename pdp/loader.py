"""A policy directory -> compiled policy and entity store (text -> parse -> check -> compile).

Policy files are `*.pdp` (tests, `*_test.pdp`, are left to `pdp test`); data files are
`data.json` or `*.data.json`. A file without a `namespace` line takes its folder path
(`policies/docs/admin/x.pdp` -> `docs.admin`).
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pdp.entities import DataFile, EntityStore, build_store, constants_of, read_data_file
from policy_lang.checker import check
from policy_lang.compiler import CompiledPolicy, compile_policy
from policy_lang.errors import Diagnostic, PolicyError
from policy_lang.nodes import PolicyFile
from policy_lang.parser import parse
from policy_lang.sandbox import UnsafeCodeError
from policy_lang.spans import Source, Span


@dataclass(frozen=True, slots=True)
class PolicySources:
    policies: tuple[tuple[str, str, str], ...]  # (display name, namespace, text)
    data: tuple[tuple[str, str], ...]  # (display name, text)
    root: str = ""  # names are hashed relative to it, so the revision does not depend on the cwd

    def _key(self, name: str) -> str:
        if self.root and name.startswith(self.root):
            return name[len(self.root) :].lstrip("/")
        return name

    @property
    def revision(self) -> str:
        digest = hashlib.sha256()
        for name, namespace, text in self.policies:
            digest.update(f"policy\0{self._key(name)}\0{namespace}\0{text}\0".encode())
        for name, text in self.data:
            digest.update(f"data\0{self._key(name)}\0{text}\0".encode())
        return digest.hexdigest()[:16]


def is_policy_file(path: Path) -> bool:
    return path.suffix == ".pdp" and not path.stem.endswith("_test")


def is_data_file(path: Path) -> bool:
    return path.name == "data.json" or path.name.endswith(".data.json")


def read_directory(root: str | Path) -> PolicySources:
    base = Path(root)
    if base.is_file():
        return PolicySources(((str(base), "", base.read_text(encoding="utf-8")),), ())
    if not base.is_dir():
        raise FileNotFoundError(f"no policy directory at {base}")
    policies, data = [], []
    for path in sorted(base.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(base)
        display = str(path)
        if is_policy_file(path):
            namespace = ".".join(rel.parent.parts)
            policies.append((display, namespace, path.read_text(encoding="utf-8")))
        elif is_data_file(path):
            data.append((display, path.read_text(encoding="utf-8")))
    return PolicySources(tuple(policies), tuple(data), str(base))


def parse_all(sources: PolicySources) -> list[PolicyFile]:
    """Parse every file, reporting the syntax errors of all of them together."""
    files: list[PolicyFile] = []
    diagnostics: list[Diagnostic] = []
    texts: dict[str, Source] = {}
    for name, namespace, text in sources.policies:
        texts[name] = Source(name, text)
        try:
            files.append(parse(text, filename=name, namespace=namespace))
        except PolicyError as exc:
            diagnostics.extend(exc.diagnostics)
    if diagnostics:
        raise PolicyError(diagnostics, texts)
    return files


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Compiling allocates hundreds of thousands of small, long-lived objects (AST nodes); the
    cyclic collector would walk them again and again (a 10,000-rule parse took 2.3x as long
    with it running). Nothing made here is cyclic garbage, so it waits until we are done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_sources(sources: PolicySources) -> tuple[CompiledPolicy, EntityStore]:
    with _collector_paused():
        return _compile_sources(sources)


def _compile_sources(sources: PolicySources) -> tuple[CompiledPolicy, EntityStore]:
    texts = {name: Source(name, text) for name, _, text in sources.policies}
    texts.update({name: Source(name, text) for name, text in sources.data})
    try:
        files = parse_all(sources)
        data_files: Sequence[DataFile] = [read_data_file(name, text) for name, text in sources.data]
        checked = check(files, constant_values=constants_of(data_files), sources=texts)
        store = build_store(data_files, checked.schema)
        try:
            return compile_policy(checked, sources.revision), store
        except UnsafeCodeError as exc:  # the compiler made code its own gate refuses: our bug, reported
            first = files[0].span if files else Span("<policy>", 1, 1, 1, 2)
            raise PolicyError([Diagnostic("internal_error", f"code generation failed: {exc}", first)]) from None
    except PolicyError as exc:
        exc.sources.update({k: v for k, v in texts.items() if k not in exc.sources})
        raise
