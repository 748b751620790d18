"""Redocly's linter (its recommended rules) finds no error in /openapi.json; the one
warnings left are explained in the README (no license is declared: the project has none;
two paths look ambiguous to it, which their integer ids keep apart)."""
import json
import subprocess

from tests.support.node_tools import NODE_DIR, node_tool

EXPLAINED_WARNINGS = {"info-license", "no-ambiguous-paths"}


def test_redocly_lint_recommended_finds_no_error(client, tmp_path):
    redocly = node_tool("redocly")
    document = tmp_path / "openapi.json"
    document.write_bytes(client.get("/openapi.json").get_data())
    run = subprocess.run([redocly, "lint", str(document), "--format", "json"], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    problems = [(problem["ruleId"], problem["severity"], problem["message"]) for problem in report["problems"]]
    assert report["totals"]["errors"] == 0, problems
    assert {rule for rule, _, _ in problems} <= EXPLAINED_WARNINGS, problems
    assert run.returncode == 0, run.stderr[-2000:]
