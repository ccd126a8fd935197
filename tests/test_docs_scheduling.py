"""docs/guides/scheduling.md against corpusbeam/exit_codes.py: the table has every exit
status, and the cron, systemd and Kubernetes snippets name only statuses that exist (the
YAML parsed; the unit files checked by ``systemd-analyze verify`` where it is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from corpusbeam.exit_codes import ExitCode
from tests.support.paths import REPO

PAGE = (REPO / "docs" / "guides" / "scheduling.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", PAGE, re.S)


def test_the_table_has_every_exit_status():
    rows = set(re.findall(r"^\| (\d+) \| `(\w+)` \|", PAGE, re.M))
    assert rows == {(str(int(c)), c.name) for c in ExitCode}


def test_the_snippets_name_only_statuses_that_exist():
    codes = {int(c) for c in ExitCode}
    (cron,) = [b for b in blocks("sh") if "case $code" in b]
    named = {int(n) for arm in re.findall(r"^\s*([\d|]+)\)", cron, re.M) for n in arm.split("|")}
    assert named <= codes and {4, 6} <= named
    (service, _timer) = blocks("ini")
    success = re.search(r"^SuccessExitStatus=(.*)$", service, re.M).group(1).split()
    assert {int(n) for n in success} == {ExitCode.BUDGET_REACHED, ExitCode.BUSY}
    (cronjob,) = blocks("yaml")
    spec = yaml.safe_load(cronjob)["spec"]["jobTemplate"]["spec"]
    (fail,) = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert set(fail["onExitCodes"]["values"]) <= codes
    args = spec["template"]["spec"]["containers"][0]["args"][0]
    assert "case $code in 4|6) exit 0;; esac" in args


def test_the_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    paths = []
    for block in blocks("ini"):
        path = tmp_path / block.splitlines()[0].rsplit("/", 1)[-1]
        # the unit runs an installed corpusbeam; here any executable stands in for it
        path.write_text(block.replace("/usr/local/bin/corpusbeam", shutil.which("true")))
        paths.append(str(path))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
