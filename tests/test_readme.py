"""The README as a user reads it: its commands parse (the cheap ones run), it fits in 12 KB, its links resolve.

Also keeps docs/config.md's copy of the config reference in sync with `config.reference_markdown()`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cartpole_jax import config
from cartpole_jax.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_BYTES = 12 * 1024


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", text, re.S | re.M)


def cli_lines(text: str) -> list[str]:
    """Every `cartpole-jax ...` command of the bash blocks, trailing `# comment` dropped.

    Lines that start with `cartpole-jax`, plus `cartpole-jax` commands chained after `&&`.
    """
    out = []
    for block in bash_blocks(text):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("cartpole-jax ") or part == "cartpole-jax":
                    out.append(shlex.join(shlex.split(part, comments=True)))
    return out


COMMANDS = cli_lines(README.read_text())


def test_readme_has_commands():
    assert any(c.startswith("cartpole-jax train") for c in COMMANDS), COMMANDS
    assert len(COMMANDS) >= 5


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line):
    try:
        args = build_parser().parse_args(shlex.split(line)[1:])
    except SystemExit as err:  # argparse's error (exit 2): the README shows a command that does not exist
        pytest.fail(f"README command does not parse (exit {err.code}): {line}")
    assert args.command == shlex.split(line)[1]


def cheap_argv(line: str) -> list[str] | None:
    """The arguments to run `line` with for real in a few seconds, or None where it trains or compiles.

    `config` runs as written (unless it names a TOML file, which the README only shows); `plan` runs
    with `--no-compile` (shapes only, ~4 s; the compiled memory analysis would take a compile).
    """
    argv = shlex.split(line)[1:]
    if argv[0] == "config":
        return None if "--config" in argv else argv
    if argv[0] == "plan" and "--config" not in argv:
        return argv if "--no-compile" in argv else [*argv, "--no-compile"]
    return None


CHEAP = [c for c in COMMANDS if cheap_argv(c) is not None]


def test_readme_shows_a_cheap_command():
    assert CHEAP, "the README should show at least one `config` or `plan` command, which this test runs"


@pytest.mark.parametrize("line", CHEAP)
def test_readme_cheap_command_runs(line, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", CARTPOLE_JAX_CACHE="off")
    argv = [sys.executable, "-m", "cartpole_jax", *cheap_argv(line)]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{line}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    assert proc.stdout.strip()
    assert list(tmp_path.iterdir()) == [], "a cheap README command wrote files"


def test_readme_fits_in_12_kib():
    size = README.stat().st_size
    assert size <= MAX_BYTES, f"README.md is {size} bytes; at most {MAX_BYTES} (move detail into docs/)"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def local_links(text: str) -> list[str]:
    """Targets of markdown links and images that are paths in this repository (no URL, no bare anchor)."""
    text = re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)  # code blocks hold no links
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


DOCS = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    links = local_links(page.read_text())
    if page == README:
        assert links, "README.md should link its docs pages"
    missing = [t for t in links if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_docs_config_reference_is_current():
    text = (ROOT / "docs" / "config.md").read_text()
    m = re.search(r"^<!-- config-reference:start -->\n(.*?)\n?^<!-- config-reference:end -->$", text, re.S | re.M)
    assert m, "docs/config.md lacks its <!-- config-reference:start/end --> block"
    hint = "regenerate with: python -c 'from cartpole_jax import config; print(config.reference_markdown())'"
    assert m.group(1).strip() == config.reference_markdown().strip(), hint
