"""graphql-http's server audits (the GraphQL-over-HTTP spec's MUSTs and SHOULDs, 61 of them)
against `pomreport serve`: every one passes.

The audit is the npm package pinned in tests/http_audit (installed by `make test`); without
Node.js or the package the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serve_process import serving

AUDIT = Path(__file__).resolve().parents[1] / "http_audit"


def test_every_graphql_over_http_audit_passes(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (AUDIT / "node_modules" / "graphql-http").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the audit needs Node.js and `npm ci` in tests/http_audit (make test)")
        pytest.skip("no Node.js, or tests/http_audit not installed (make test installs it)")
    with serving(tmp_path) as served:
        done = subprocess.run(
            [node, str(AUDIT / "audit.js"), f"{served.base_url}/graphql"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    results = json.loads(done.stdout)
    assert len(results) >= 61
    failed = [f"{result['status']}: {result['name']}: {result['reason']}" for result in results]
    failed = [
        line for line, result in zip(failed, results, strict=True) if result["status"] != "ok"
    ]
    assert failed == []
