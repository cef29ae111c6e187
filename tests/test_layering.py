"""The layers import downwards only: nothing below the web layer imports it or Flask.

Read from the sources with ``ast`` (every import, function-local ones included), so a module
that is never imported by a test is checked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "webapp"

BELOW_WEB = ("openapi", "capture", "engine", "emulator", "analysis", "dsp", "calibration")
"""Packages under ``webapp/`` that must not know the web layer."""
BELOW_WEB_MODULES = ("datadir.py", "auditlog.py", "statefile.py", "runtime.py")
"""Single modules under ``webapp/`` used by the web layer and by the layers below it."""
WEB_ONLY = ("webapp.web", "flask", "flask_socketio", "werkzeug", "socketio", "engineio")

EMULATOR_SHARES = ("webapp.emulator", "webapp.openapi.model", "webapp.openapi.stream")
"""What the emulator may import of the project: itself, the data model and the stream codec."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved against
    ``package``, by default the one ``path`` is in)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = _module_name(path)
        if path.name != "__init__.py":
            package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # ``from webapp import web`` imports webapp.web as well.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _sources_below_web() -> list[Path]:
    files = [f for pkg in BELOW_WEB for f in sorted((ROOT / pkg).rglob("*.py"))]
    return files + [ROOT / name for name in BELOW_WEB_MODULES]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT.parent).as_posix()


def test_the_checked_sources_exist():
    files = _sources_below_web()
    assert all(f.is_file() for f in files)
    for pkg in BELOW_WEB:
        assert any(_rel(f).startswith(f"webapp/{pkg}/") for f in files), pkg


def test_import_scanner_sees_every_kind_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import flask\n"
        "from webapp import web\n"
        "def f():\n"
        "    from ..web.state import LiveState\n"
        "    from . import core\n",
        encoding="utf-8",
    )
    found = imports_of(sample, package="webapp.engine")
    assert {"flask", "webapp.web", "webapp.web.state", "webapp.engine.core"} <= found
    assert not _is_under("webapp.webhooks", ("webapp.web",))


def test_no_layer_below_the_web_imports_it_or_flask():
    offences = []
    for path in _sources_below_web():
        for module in sorted(imports_of(path)):
            if _is_under(module, WEB_ONLY):
                offences.append(f"{_rel(path)} imports {module}")
    assert not offences, "\n".join(offences)


def test_the_emulator_shares_only_the_stream_codec_and_the_data_model():
    offences = []
    for path in sorted((ROOT / "emulator").rglob("*.py")):
        for module in sorted(imports_of(path)):
            project = _is_under(module, ("webapp",)) and module != "webapp"
            if project and not _is_under(module, EMULATOR_SHARES):
                offences.append(f"{_rel(path)} imports {module}")
    assert not offences, "\n".join(offences)
