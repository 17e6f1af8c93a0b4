"""`pdp logs`: reading, filtering and printing decision logs, in-process and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pdp.cli import main
from pdp.decision import Decision, DecisionError
from pdp.decision_log import (
    DecisionEvent,
    DecisionLog,
    Masker,
    event_for,
    format_event,
    log_files,
    matches,
    parse_time,
    read_events,
    worker_path,
)

ROOT = Path(__file__).resolve().parents[2]
MakeEvent = Callable[..., DecisionEvent]
T0 = 1795737600.0  # 2026-11-27T00:00:00Z


def pdp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def event(i: int, *, allowed: bool, pid: str, reasons: tuple[str, ...] = (), **over: Any) -> DecisionEvent:
    errors = over.pop("errors", ())
    decision = Decision(allowed, reasons=reasons, errors=errors, revision="rev1")
    request = {
        "principal": {"type": "User", "id": pid, "attributes": {"email": "x"}},
        "action": "read",
        "resource": {"type": "Document", "id": f"doc-{i}"},
    }
    fields: dict[str, Any] = {
        "decision_id": f"e{i}",
        "latency_us": 10.0 + i,
        "cached": i == 1,
        "masker": Masker(None),
        "timestamp": T0 + i * 60,  # one a minute
    }
    fields.update(over)
    return event_for(request, decision, **fields)


EVENTS = [
    event(0, allowed=True, pid="bob", reasons=("acme.owner_full_access", "role:viewer")),
    event(1, allowed=False, pid="alice", reasons=("acme.forbid_suspended",)),
    event(2, allowed=False, pid="bob", errors=(DecisionError("no entry `x` in the map", rule="acme.broken"),)),
    event(3, allowed=True, pid="carol", reasons=("role:editor",), source="envoy", worker=2),
    event(4, allowed=False, pid="bob", reasons=()),
]


@pytest.fixture(params=["jsonl", "msgpack"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"decisions.{request.param}"
    with DecisionLog(path, format=request.param) as log:
        for e in EVENTS:
            log.submit(e)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["logs", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def shown_ids(lines: list[str]) -> list[str]:
    return [json.loads(line)["decision_id"] for line in lines]


def test_prints_one_line_per_event(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, str(log))
    assert code == 0 and err == ""
    assert lines == [
        "2026-11-27T00:00:00.000000Z allow User:bob read Document:doc-0 [acme.owner_full_access,role:viewer] 10.0us",
        "2026-11-27T00:01:00.000000Z deny  User:alice read Document:doc-1 [acme.forbid_suspended] 11.0us cached",
        "2026-11-27T00:02:00.000000Z deny  User:bob read Document:doc-2 [] 12.0us error: no entry `x` in the map",
        "2026-11-27T00:03:00.000000Z allow User:carol read Document:doc-3 [role:editor] 13.0us source=envoy worker=2",
        "2026-11-27T00:04:00.000000Z deny  User:bob read Document:doc-4 [] 14.0us",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--decision", "allow"), ["e0", "e3"]),
        (("--decision", "deny"), ["e1", "e2", "e4"]),
        (("--principal", "bob"), ["e0", "e2", "e4"]),
        (("--principal", "User:alice"), ["e1"]),
        (("--principal", "Robot:bob"), []),
        (("--rule", "role:editor"), ["e3"]),
        (("--rule", "acme.broken"), ["e2"]),  # in an error
        (("--since", "2026-11-27T00:02:00Z"), ["e2", "e3", "e4"]),
        (("--until", "2026-11-27T00:02:00Z"), ["e0", "e1"]),
        (("--since", "2026-11-27T01:01:00+01:00", "--until", "2026-11-27T00:03:30"), ["e1", "e2", "e3"]),
        (("--since", "2026-11-28"), []),
        (("--decision", "deny", "--principal", "bob", "--limit", "1"), ["e2"]),
        (("--limit", "2"), ["e0", "e1"]),
    ],
)
def test_filters(log: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: list[str]) -> None:
    code, lines, err = run(capsys, str(log), "--json", *args)
    assert code == 0 and err == ""
    assert shown_ids(lines) == expected


def test_json_output_is_the_logged_event(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = run(capsys, str(log), "--json")
    assert [json.loads(line) for line in lines] == [e.to_json() for e in EVENTS]


def test_rotated_files_are_read_oldest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "decisions.jsonl"
    with DecisionLog(path, max_bytes=1500, backups=50) as log:
        for i in range(60):
            log.submit(event(i, allowed=True, pid="bob"))
    assert log.rotations >= 5
    expected = [f"e{i}" for i in range(60)]
    _, lines, _ = run(capsys, str(path), "--json")
    assert shown_ids(lines) == expected
    _, lines, _ = run(capsys, str(tmp_path / "decisions.jsonl*"), "--json")  # a quoted glob
    assert shown_ids(lines) == expected
    rotated = sorted(str(p) for p in tmp_path.glob("decisions.jsonl.*"))
    _, lines, _ = run(capsys, *rotated, "--json")  # as a shell expands a glob, in name order
    assert shown_ids(lines) == expected[: len(lines)]


def test_worker_files_are_merged_by_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "decisions.jsonl"
    for w in (0, 1):
        with DecisionLog(worker_path(base, w), format="msgpack" if w else "jsonl") as log:
            for i in range(w, 20, 2):
                log.submit(event(i, allowed=True, pid="bob", worker=w))
    _, lines, _ = run(capsys, str(tmp_path / "decisions.w*.jsonl"), "--json")
    assert shown_ids(lines) == [f"e{i}" for i in range(20)]
    groups = log_files([tmp_path / "decisions.w0.jsonl", tmp_path / "decisions.w1.jsonl"])
    assert [[p.name for p in g] for g in groups] == [["decisions.w0.jsonl"], ["decisions.w1.jsonl"]]


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_truncated_last_record_stops_with_a_warning(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"decisions.{fmt}"
    with DecisionLog(path, format=fmt) as log:
        for e in EVENTS:
            log.submit(e)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 9)  # a crash in the middle of writing the last record
    code, lines, err = run(capsys, str(path), "--json")
    assert code == 0
    assert shown_ids(lines) == ["e0", "e1", "e2", "e3"]
    assert err.startswith("pdp logs: warning: ") and "truncated record at byte" in err
    assert "Traceback" not in err


def test_damaged_line_in_the_middle_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "decisions.jsonl"
    lines = [json.dumps(e.to_json()) for e in EVENTS[:3]]
    path.write_text(f"{lines[0]}\n{lines[1][:20]}\n\n[1, 2]\n{lines[2]}\n")
    code, out, err = run(capsys, str(path), "--json")
    assert code == 0 and shown_ids(out) == ["e0", "e2"]
    assert "line 2 is not a JSON record" in err and "line 4 is not a JSON object" in err


def test_damaged_msgpack_stops_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "decisions.msgpack"
    with DecisionLog(path, format="msgpack") as log:
        log.submit(EVENTS[0])
    with open(path, "ab") as f:
        f.write(b"\xc1\xc1\xc1")  # 0xc1 is never used in msgpack
    code, out, err = run(capsys, str(path), "--json")
    assert code == 0 and shown_ids(out) == ["e0"]
    assert "damaged record" in err


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(b"")
    assert run(capsys, str(path)) == (0, [], "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.jsonl",), "no such file: missing.jsonl"),
        (("nothing-*.jsonl",), "no file matches nothing-*.jsonl"),
        (("{log}", "--since", "yesterday"), "--since: `yesterday` is not a time"),
        (("{log}", "--until", "2026-13-01"), "--until:"),
    ],
)
def test_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.jsonl").write_text(json.dumps(EVENTS[0].to_json()) + "\n")
    code, out, err = run(capsys, *(a.replace("{log}", "log.jsonl") for a in args))
    assert code == 2 and out == []
    assert err.startswith("pdp: error: ") and message in err


def test_bad_limit_is_a_usage_error(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(log), "--limit", "0")
    assert code == 2 and "positive integer" in err


def test_control_characters_stay_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "decisions.jsonl"
    with DecisionLog(path) as log:
        log.submit(event(0, allowed=False, pid="evil\n2026-01-01 allow User:admin\x1b[2J"))
    _, lines, _ = run(capsys, str(path))
    assert len(lines) == 1
    assert "evil\\n2026-01-01 allow User:admin\\x1b[2J" in lines[0]


def test_subprocess(log: Path) -> None:
    proc = pdp("logs", str(log), "--decision", "deny", "--principal", "bob")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[4] for line in proc.stdout.splitlines()] == ["Document:doc-2", "Document:doc-4"]
    with open(log, "r+b") as f:
        f.truncate(log.stat().st_size - 3)
    proc = pdp("logs", str(log), "--json")
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 4
    assert "truncated record" in proc.stderr and "Traceback" not in proc.stderr
    proc = pdp("logs", str(log.parent / "nope.jsonl"))
    assert proc.returncode == 2 and proc.stderr.startswith("pdp: error: no such file")


def test_subprocess_closed_pipe(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    with DecisionLog(path) as log:
        for i in range(5000):
            log.submit(event(i, allowed=True, pid="bob"))
    proc = subprocess.run(
        f"{sys.executable} -m pdp.cli logs {path} | head -n 1", shell=True, cwd=ROOT, capture_output=True, text=True
    )
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_help_lists_logs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--decision {allow,deny}" in out and "--since TIME" in out


# ---- the functions behind the command ------------------------------------------------------


def test_matches_and_format_tolerate_odd_events() -> None:
    odd: dict[str, Any] = {"request": ["not", "an", "object"], "allowed": "yes", "reasons": "r", "errors": [7]}
    assert matches(odd, decision="deny")
    assert not matches(odd, principal="bob")
    assert not matches(odd, rule="r")
    assert not matches(odd, since=parse_time("2026-01-01"))
    assert format_event(odd) == "? deny  ?:? ? ?:? [] ?us error: 7"


def test_parse_time() -> None:
    assert parse_time("2026-11-27T00:00:00Z").timestamp() == T0
    assert parse_time("2026-11-27").timestamp() == T0
    assert parse_time("2026-11-27T01:00:00+01:00").timestamp() == T0
    assert parse_time("15m", now=T0).timestamp() == T0 - 900
    with pytest.raises(ValueError):
        parse_time("soon")


def test_read_events_resolves_files_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_events([tmp_path / "missing.jsonl"])
    with pytest.raises(FileNotFoundError):
        read_events([tmp_path])
