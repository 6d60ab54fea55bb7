"""The entry point (__main__.py): start-up without the cyclic garbage collector, which is back,
and what start-up built frozen, before a command does its work (startup.py, issue 18)."""

from __future__ import annotations

import configparser
import gc
import json
import subprocess
import sys

from tests.mails import message
from tests.proc import ROOT, environment
from tests.test_ingest_maildir import make_maildir

# The entry point's main(), with resume_gc watched: was the collector paused when start-up ended,
# which modules were imported by then, is it running again after, and (for fetch) was it running
# when the run began its work.
PROBE = """
import gc, json, sys
from helpdesk_fetch import __main__ as entry, startup
calls = []
resume = startup.resume_gc
def watched():
    before = gc.isenabled()
    resume()
    calls.append({"paused": not before, "run_imported": "helpdesk_fetch.ingest.run" in sys.modules,
                  "enabled_after": gc.isenabled(), "frozen": gc.get_freeze_count()})
    run = sys.modules.get("helpdesk_fetch.ingest.run")
    if run is not None:
        fetch = run.fetch
        def watched_fetch(*args, **kwargs):
            calls.append({"run_began_with_gc": gc.isenabled()})
            return fetch(*args, **kwargs)
        run.fetch = watched_fetch
startup.resume_gc = watched
sys.argv = ["helpdesk-fetch", *sys.argv[1:]]
try:
    entry.main()
finally:
    print("PROBE " + json.dumps(calls), file=sys.stderr)
"""

def probe(*args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=ROOT, env=environment(), timeout=120)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("PROBE "))
    return proc, json.loads(line.removeprefix("PROBE "))


def test_fetch_resumes_the_collector_once_its_run_is_imported(tmp_path, write_config):
    box = make_maildir(tmp_path / "Maildir", [message("Disk full")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])

    proc, calls = probe("--config", str(config), "fetch")

    assert proc.returncode == 0, proc.stderr
    assert list((box / "new").iterdir()) == []  # the run did its work with the collector on
    resumed = [c for c in calls if c.get("paused")]
    assert len(resumed) == 1, calls
    assert resumed[0]["run_imported"] and resumed[0]["enabled_after"]
    assert resumed[0]["frozen"] > 10_000  # start-up's objects, out of later collections' way
    assert {"run_began_with_gc": True} in calls  # back on before the run, not after it


def test_other_commands_resume_it_before_they_start(tmp_path, write_config):
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(tmp_path)}])

    proc, calls = probe("--config", str(config), "accounts", "list")

    assert proc.returncode == 0, proc.stderr
    resumed = [c for c in calls if c.get("paused")]
    assert len(resumed) == 1 and resumed[0]["enabled_after"], calls
    assert not resumed[0]["run_imported"]


def test_resuming_what_was_not_paused_changes_nothing():
    """The CLI called in-process (the tests, a library user): the collector is left alone."""
    from helpdesk_fetch import startup

    frozen = gc.get_freeze_count()
    startup.resume_gc()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_the_console_script_and_python_dash_m_enter_through_the_pause():
    """Entered through helpdesk_fetch.cli directly, the collector would run through start-up
    again, and nothing else would say so."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].split()
    assert scripts == ["helpdesk-fetch", "=", "helpdesk_fetch.__main__:main"]
    proc = subprocess.run([sys.executable, "-m", "helpdesk_fetch", "--version"], cwd=ROOT,
                          env=environment(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("helpdesk-fetch"), proc.stderr
