"""The committed generated code is what scripts/gen_protos.sh produces from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    for name in ("authorization_pb2.py", "authorization_pb2.pyi", "authorization_pb2_grpc.py"):
        fresh = (tmp_path / "pdp" / "v1" / name).read_text()
        committed = (ROOT / "pdp" / "v1" / name).read_text()
        assert fresh == committed, f"pdp/v1/{name} is stale: run scripts/gen_protos.sh"
