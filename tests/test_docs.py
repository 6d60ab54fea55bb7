"""The README's command reference is the command line's own help, and completion works."""

from __future__ import annotations

import subprocess
import sys

from helpdesk_fetch.cli import cli, docs, subcommands
from tests.proc import ROOT, environment, helpdesk_fetch


def test_readme_command_reference_is_generated_from_the_cli():
    readme = docs.README.read_text(encoding="utf-8")
    assert docs.update(readme) == readme, (
        "README.md's command reference differs from the CLI: run "
        "`python -m helpdesk_fetch.cli.docs` (or `make docs`) and commit README.md")


def test_reference_covers_every_command_with_its_options():
    reference = docs.reference()
    for path, ctx in docs.walk():
        assert f"### `{' '.join(('helpdesk-fetch', *path))}`" in reference
        for param in ctx.command.params:
            if getattr(param, "hidden", False):  # kept for old scripts, no longer shown
                continue
            for flag in param.opts:
                if flag.startswith("--"):
                    assert flag in reference, (path, flag)
    table = docs.command_table()
    assert "| `deliver` |" in table and "| `errors retry` |" in table


def test_check_mode_fails_on_a_stale_readme(tmp_path, monkeypatch):
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{docs.begin('COMMAND TABLE')}\nold\n{docs.end('COMMAND TABLE')}\n"
                     f"{docs.begin('COMMAND REFERENCE')}\n{docs.end('COMMAND REFERENCE')}\n")
    monkeypatch.setattr(docs, "README", stale)

    assert docs.main(["--check"]) == 1
    assert docs.main([]) == 0
    assert docs.main(["--check"]) == 0
    assert "| `fetch` |" in stale.read_text()


def test_the_generator_runs_as_a_script(tmp_path):
    """`make docs` runs the module as __main__, where a name defined below the guard, or a
    module-level mistake, fails only then: run it so, on a copy of the README."""
    stale = tmp_path / "README.md"
    readme = docs.README.read_text(encoding="utf-8")
    stale.write_text(docs.update(readme).replace("| `fetch` |", "| `fetch` (old) |", 1),
                     encoding="utf-8")

    def script(*args: str):
        return subprocess.run([sys.executable, "-m", "helpdesk_fetch.cli.docs", *args],
                              capture_output=True, text=True, cwd=ROOT, env=environment(),
                              timeout=120)

    checked = script("--check", str(stale))
    assert (checked.returncode, checked.stderr) == (
        1, f"{stale}: the command reference is out of date; run "
           "`python -m helpdesk_fetch.cli.docs`\n")
    updated = script(str(stale))
    assert (updated.returncode, updated.stdout, updated.stderr) == (
        0, f"{stale}: command reference updated\n", "")
    assert stale.read_text(encoding="utf-8") == docs.update(readme)
    assert script("--check", str(stale)).returncode == 0
    assert docs.README.read_text(encoding="utf-8") == readme  # the real one untouched


def test_shell_completion():
    for shell in ("bash", "zsh", "fish"):
        script = helpdesk_fetch(env=environment(_HELPDESK_FETCH_COMPLETE=f"{shell}_source"))
        assert script.returncode == 0 and b"_HELPDESK_FETCH_COMPLETE" in script.stdout, shell
    words = helpdesk_fetch(env=environment(_HELPDESK_FETCH_COMPLETE="bash_complete",
                                           COMP_WORDS="helpdesk-fetch errors re",
                                           COMP_CWORD="2"))
    assert words.stdout.decode().split() == ["plain,retry"]
    assert "errors" in subcommands(cli)


def test_account_names_complete(write_config):
    config = write_config([{"name": "helpdesk", "protocol": "maildir", "path": "a"},
                           {"name": "monitoring", "protocol": "maildir", "path": "b"}])
    for words in (f"helpdesk-fetch --config {config} fetch --account he",
                  f"helpdesk-fetch --config {config} accounts disable he"):
        done = helpdesk_fetch(env=environment(_HELPDESK_FETCH_COMPLETE="bash_complete",
                                              COMP_WORDS=words,
                                              COMP_CWORD=str(len(words.split()) - 1)))
        assert done.stdout.decode().split() == ["plain,helpdesk"], words
