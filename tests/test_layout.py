"""The package's layout rules (README "Map of the code"), read from the imports of every module,
including imports inside functions and under TYPE_CHECKING.

- a stage is a folder; the root holds only foundations (errors, clock, enums, ...) that import
  nothing but each other, and the entry point (``ENTRY_POINTS``), which starts the CLI;
- sources/ and message/ know nothing of tickets, storage or a run;
- only cli/ imports click or rich;
- no import cycle between folders.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "helpdesk_fetch"
LOWER = {"sources", "message"}
NOT_BELOW = {"store", "tickets", "ingest", "automail", "health", "cli"}
UI_LIBRARIES = {"click", "rich"}
# At the root, and yet above everything: it starts the command line (pausing the collector before
# helpdesk_fetch.cli is imported, so it cannot live in cli/).
ENTRY_POINTS = {"helpdesk_fetch.__main__"}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p
            for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every module *path* imports, absolute, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _folder(module: str) -> str:
    """The stage a module of the package belongs to ("root" for the foundations)."""
    parts = module.split(".")
    if len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "root"


def _folder_edges() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        source = _folder(module)
        for target in _imports(path):
            real = _module_of(target, modules)
            if real is not None and real != "helpdesk_fetch.__init__" \
                    and module not in ENTRY_POINTS and _folder(real) != source:
                edges.setdefault(source, set()).add(_folder(real))
    return edges


def _module_of(target: str, modules: dict[str, Path]) -> str | None:
    """The module an import of *target* loads: a module, a package's ``__init__``, or the
    module or package a name is imported from."""
    parent = target.rpartition(".")[0]
    return next((m for m in (target, f"{target}.__init__", parent, f"{parent}.__init__")
                 if m in modules), None)


def test_every_module_is_found():
    modules = _modules()
    assert {"helpdesk_fetch.sources.base", "helpdesk_fetch.cli.__init__"} <= set(modules)
    assert {_folder(m) for m in modules} >= {"root", "config", "secrets", "sources", "message",
                                              "tickets", "store", "automail", "ingest", "cli"}


@pytest.mark.parametrize("module", sorted(_modules()))
def test_only_the_cli_imports_click_or_rich(module):
    if _folder(module) == "cli":
        return
    roots = {name.split(".")[0] for name in _imports(_modules()[module])}
    assert not roots & UI_LIBRARIES, f"{module} imports {roots & UI_LIBRARIES}"


def test_sources_and_message_know_nothing_of_tickets_storage_or_runs():
    edges = _folder_edges()
    for lower in LOWER:
        assert not edges.get(lower, set()) & NOT_BELOW, f"{lower}/ imports {edges[lower]}"


def test_the_foundations_import_only_each_other():
    imported = _folder_edges().get("root", set())
    assert imported == set(), f"root modules import {imported}"


def test_no_import_cycle_between_folders():
    edges = _folder_edges()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            assert nxt not in path, "import cycle: " + " -> ".join([*path, nxt])
            visit(nxt, [*path, nxt])

    for start in sorted(edges):
        visit(start, [start])


def test_the_layout_test_sees_a_cycle(tmp_path, monkeypatch):
    """The checks above would notice: a fake package with a cycle between two folders."""
    for folder, other in (("a", "b"), ("b", "a")):
        (tmp_path / "helpdesk_fetch" / folder).mkdir(parents=True)
        (tmp_path / "helpdesk_fetch" / folder / "m.py").write_text(
            f"def f():\n    from helpdesk_fetch.{other} import m\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "helpdesk_fetch")
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle_between_folders()


def test_the_layout_test_sees_an_import_of_a_package(tmp_path, monkeypatch):
    """A package is imported through its ``__init__``: a root module importing cli/ breaks
    the rule, whether it names a module of cli/ or only the package."""
    (tmp_path / "helpdesk_fetch" / "cli").mkdir(parents=True)
    (tmp_path / "helpdesk_fetch" / "cli" / "__init__.py").write_text("def main():\n    pass\n")
    (tmp_path / "helpdesk_fetch" / "clock.py").write_text("from helpdesk_fetch.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "helpdesk_fetch")
    with pytest.raises(AssertionError, match="root modules import {'cli'}"):
        test_the_foundations_import_only_each_other()


def test_the_readme_map_of_the_code_lists_every_module():
    """README "Map of the code": a newcomer finds every module there, one line each."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Map of the code", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        folder = rel.parent.as_posix() + "/" if rel.parent.parts else ""
        if "migrations" in rel.parts or (folder and rel.name == "__init__.py"):
            continue
        if not any(_lists(row, rel.as_posix(), folder, rel.name) for row in rows):
            missing.append(rel.as_posix())
    assert not missing, f"README's map of the code does not list {missing}"


def _lists(row: str, path: str, folder: str, name: str) -> bool:
    """Whether a row of the map names the module *path*: in full, or its folder in the first
    cell and its file name anywhere in the row (`sources/imap.py`, `pop3.py`, ...)."""
    first = row.split("|")[1]
    if f"`{path}`" in first:
        return True
    if folder:
        return f"`{folder}" in first and f"`{name}`" in row
    return f"`{name}`" in first


def _imported(config: Path, names: tuple[str, ...]) -> list[str]:
    """Which of the modules *names* a ``fetch`` with the accounts file *config* imported, run
    in a process of its own."""
    import subprocess

    script = ("import sys; from helpdesk_fetch.cli import main\n"
              "names = sys.argv[2:]\n"
              "sys.argv[1:] = ['--config', sys.argv[1], 'fetch']\n"
              "try: main()\n"
              "except SystemExit: pass\n"
              "print(' '.join(n for n in names if n in sys.modules))")
    # Without `make test`'s coverage, which pytest-cov starts in every child through
    # $COVERAGE_PROCESS_CONFIG (and which imports socket): what the tool imports, not what
    # measuring it does.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COV_CORE_", "COVERAGE_PROCESS_"))}
    done = subprocess.run([sys.executable, "-c", script, str(config), *names], env=env,
                          capture_output=True, text=True, cwd=PACKAGE.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_run_that_finds_no_mail_imports_nothing_that_handles_mail(tmp_path, write_config):
    """The cron tick that finds nothing (issue 18): no parser, classifier, rules, auto-mails,
    SMTP, canaries, hook queue, commit groups or dry-run plans; they are imported at the first
    message. The same run with a message imports them. Nor psycopg2 on SQLite, once the
    database exists (peewee would: store/peewee_adapter.py), nor difflib (the accounts file's
    "did you mean")."""
    box = tmp_path / "box"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    config = write_config([{"name": "box", "protocol": "maildir", "path": str(box)}])
    names = ("email.parser", "smtplib", "helpdesk_fetch.message.parse",
             "helpdesk_fetch.message.classify", "helpdesk_fetch.ingest.decide",
             "helpdesk_fetch.tickets.routing", "helpdesk_fetch.automail.plan", "psycopg2",
             "difflib", "helpdesk_fetch.health.canary", "helpdesk_fetch.hooks.queue",
             "helpdesk_fetch.tickets.rules", "helpdesk_fetch.store.group",
             "helpdesk_fetch.ingest.report")

    assert set(_imported(config, names)) <= {"psycopg2"}  # the first run: playhouse's migrations
    assert _imported(config, names) == []  # every run after it
    (box / "new" / "1.test").write_bytes(b"From: a@example.org\nSubject: Hi\n\nHello\n")
    assert {"helpdesk_fetch.ingest.decide", "helpdesk_fetch.message.classify",
            "helpdesk_fetch.health.canary", "helpdesk_fetch.tickets.rules",
            "helpdesk_fetch.store.group"} <= set(_imported(config, names))


def test_a_disabled_run_imports_nothing_of_the_run(tmp_path, write_config, run):
    """The cron tick while ingest is disabled reads the accounts file and the switch, and ends:
    not even the quiet-repeats of the logging import health.alerts (nor socket) for it."""
    box = tmp_path / "box"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    config = write_config([{"name": "box", "protocol": "maildir", "path": str(box)}])
    assert run("ingest", "disable", "--reason", "test", config=config).exit_code == 0
    assert _imported(config, ("helpdesk_fetch.health.alerts", "socket", "peewee",
                              "helpdesk_fetch.ingest.run", "helpdesk_fetch.sources.base")) == []


def test_the_command_closes_the_database_before_it_exits(tmp_path, write_config):
    """The command line spares its exit the interpreter's last collections (gc.freeze, issue
    18); the database they used to close is closed first, so SQLite still checkpoints its WAL
    and removes it: after a run with mail and one without, only the database file is left."""
    import subprocess

    from tests.proc import environment

    box = tmp_path / "box"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1.test").write_bytes(b"From: a@example.org\nSubject: Hi\n\nHello\n")
    config = write_config([{"name": "box", "protocol": "maildir", "path": str(box)}])
    for _ in range(2):  # the first run stores the message, the second finds no mail
        done = subprocess.run([sys.executable, "-m", "helpdesk_fetch", "--config", str(config),
                               "fetch"], capture_output=True, text=True, env=environment(),
                              cwd=tmp_path, timeout=120)
        assert (done.returncode, done.stderr) == (0, "")
        assert not list(tmp_path.glob("helpdesk.db-*"))
    assert not list((box / "new").iterdir())
