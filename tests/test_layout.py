"""The layout rules the code is organised by, checked on the source: imports flow one way."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cartpole_jax"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the cartpole_jax modules a file imports (relative imports resolved)."""
    parts = ["cartpole_jax", *path.relative_to(PACKAGE).with_suffix("").parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.update(f"{name}.{a.name}" if not node.module else name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {n for n in out if n.startswith("cartpole_jax")}


def test_core_imports_nothing_outside_core_but_config():
    for path in (PACKAGE / "core").glob("*.py"):
        outside = {m for m in imported_modules(path) if not m.startswith("cartpole_jax.core") and m != "cartpole_jax.config"}
        assert not outside, f"{path.name} imports {outside}"


def test_only_the_cli_imports_the_cli_layer():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("commands/") or rel in ("cli.py", "__main__.py"):
            continue
        cli = {m for m in imported_modules(path) if m.startswith(("cartpole_jax.cli", "cartpole_jax.commands"))}
        assert not cli, f"{rel} imports {cli}"


# Outside the package, on purpose: os._exit is public API; jax._src.distributed is the coordinator's
# key-value store, which jax 0.10 exposes no other way (distributed.py says why it needs it).
OUTSIDE = {"os._exit", "jax._src"}


def test_no_module_reads_another_s_private_attributes():
    private = re.compile(r"\b(?!self\b|cls\b)[a-z_][a-z0-9_]*\._[a-z]\w*")
    for path in PACKAGE.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            found = [m for m in private.findall(code) if m not in OUTSIDE]
            assert not found, f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"


def test_the_cli_parses_validates_and_prints_a_config_without_jax():
    """--help, config and a bad --set answer in a fraction of a second: jax (seconds to import) stays out."""
    import subprocess
    import sys

    code = (
        "import sys, io, contextlib\n"
        "from cartpole_jax.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    assert main(['config']) == 0\n"
        "    assert main(['train', '--set', 'gamma=2', '--out', 'never']) == 2\n"
        "assert 'jax' not in sys.modules and 'flax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)[:5]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
