"""pytest plugin (entry point `pytest11`): collects policy test files as test items.

Installed with the `pdp` package, so `pytest` in a repository of policies collects every
`*_test.toml` it walks past (the paths given, or `testpaths`) as policy tests: one item per
test, that is per case, or per combination of a table-driven case, named as `pdp test` names
them. A failing item reports the test's `file:line`, expected vs got and the explain trace.

Which policies a test file runs against:

1. the deepest directory of the `pdp_policy_dirs` ini option (paths relative to the ini file)
   that holds the test file, e.g. `pdp_policy_dirs = ["policies"]`, as `pdp test policies`
   would; set it when policies sit in folders below the directory given to `pdp test`,
   since a file's namespace comes from its folder path under that directory;
2. otherwise the test file's own directory if it holds `.pdp` files, else the nearest
   ancestor directory that does.

Each policy directory is compiled once per session; one that does not compile makes every
test file using it a collection error showing the compiler's messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pdp.engine import Engine
    from pdp.testing.model import PolicyTest
    from pdp.testing.runner import CaseResult

_ENGINES = pytest.StashKey[dict[Path, "Engine | str"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "pdp_policy_dirs",
        type="paths",
        default=[],
        help="pdp: policy directories; a *_test.toml runs against the deepest one holding it",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith("_test.toml"):
        return PolicyFile.from_parent(parent, path=file_path)
    return None


def policy_dir_for(test_file: Path, configured: list[Path]) -> Path | None:
    """The policy directory a test file runs against (see the module docstring); None if there is none."""
    test_file = test_file.resolve()
    holding = [d.resolve() for d in configured if test_file.is_relative_to(d.resolve())]
    if holding:
        return max(holding, key=lambda d: len(d.parts))
    for directory in test_file.parents:
        if any(p.is_file() and not p.stem.endswith("_test") for p in directory.glob("*.pdp")):
            return directory
    return None


class PolicyTestFailed(Exception):
    """Raised by a failing item; carries the result to report."""

    def __init__(self, result: CaseResult):
        super().__init__(result.test.name)
        self.result = result


class PolicyFile(pytest.File):
    """A `*_test.toml` file: one item per test."""

    def collect(self) -> Iterator[pytest.Item]:
        from pdp.testing.model import PolicyTestError, load_test_file

        configured: list[Path] = self.config.getini("pdp_policy_dirs")
        directory = policy_dir_for(self.path, configured)
        if directory is None:
            raise self.CollectError(f"{self.path}: no policy files (*.pdp) in its directory or any above it")
        engine = self._engine(directory)
        try:
            tests = load_test_file(self.path, _shown(self.path, self.config.rootpath)).tests
        except PolicyTestError as exc:
            raise self.CollectError(f"{exc.location}: {exc.message}") from None
        for test in tests:
            yield PolicyItem.from_parent(self, name=test.name, test=test, engine=engine)

    def _engine(self, directory: Path) -> Engine:
        from pdp.engine import Engine
        from policy_lang.errors import PolicyError

        engines = self.config.stash.setdefault(_ENGINES, {})
        if directory not in engines:
            try:  # relative to the working directory where it can be, as `pdp test` shows file names
                engines[directory] = Engine.load(_shown(directory, Path.cwd()))
            except PolicyError as exc:
                engines[directory] = f"the policies in {directory} do not compile:\n{exc.render()}"
            except (OSError, UnicodeDecodeError) as exc:
                engines[directory] = f"cannot read the policies in {directory}: {exc}"
        found = engines[directory]
        if isinstance(found, str):
            raise self.CollectError(found)
        return found


class PolicyItem(pytest.Item):
    """One policy test: its request decided by the engine and compared with the expectation."""

    def __init__(self, *, test: PolicyTest, engine: Engine, **kwargs: Any):
        super().__init__(**kwargs)
        self.test = test
        self.engine = engine

    def runtest(self) -> None:
        from pdp.testing.runner import run_test

        result = run_test(self.engine, self.test)
        if not result.passed:
            raise PolicyTestFailed(result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        if isinstance(excinfo.value, PolicyTestFailed):
            from pdp.testing.reporters import format_failure

            return format_failure(excinfo.value.result)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.test.line - 1, f"policy test {self.test.name}"


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
