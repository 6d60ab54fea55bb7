"""``contrib/``: the crontab lines and the systemd units are valid and agree with each other;
the monitoring examples (Nagios/NRPE, Icinga 2, the Prometheus textfile script) really run
``check``."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys

from helpdesk_fetch import config
from helpdesk_fetch.cli import cli, subcommands
from tests.proc import ROOT, environment

CONTRIB = ROOT / "contrib"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(CONTRIB / name)
    return parser


def test_systemd_units_verify(tmp_path):
    """systemd-analyze checks every directive; the paths of a real install are swapped for
    ones that exist here."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: `sudo make test-deps`"
    units = []
    for name in ("helpdesk-fetch", "helpdesk-fetch-probe"):
        service = (CONTRIB / f"{name}.service").read_text()
        service = service.replace("/opt/helpdesk-fetch/bin/helpdesk-fetch", shutil.which("true"))
        service = service.replace("User=helpdesk", "User=daemon").replace("Group=helpdesk",
                                                                           "Group=daemon")
        (tmp_path / f"{name}.service").write_text(service)
        shutil.copy(CONTRIB / f"{name}.timer", tmp_path)
        units += [f"{name}.service", f"{name}.timer"]

    done = subprocess.run(["systemd-analyze", "verify", *units], cwd=tmp_path,
                          capture_output=True, text=True)

    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_service_is_hardened_and_can_write_what_it_must():
    service = unit("helpdesk-fetch.service")["Service"]
    for key, value in {"Type": "oneshot", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "SuccessExitStatus": "75"}.items():
        assert service[key] == value, key
    sample = config.load(ROOT / "sample-accounts.toml").settings
    assert service["ReadWritePaths"] == sample.state_dir
    assert sample.database == f"sqlite:///{sample.state_dir}/helpdesk.db"


def test_the_probe_service_is_hardened_alike_and_runs_hourly():
    fetch, probe = unit("helpdesk-fetch.service")["Service"], unit(
        "helpdesk-fetch-probe.service")["Service"]
    different = {"ExecStart", "SuccessExitStatus", "TimeoutStartSec"}
    assert {k: v for k, v in probe.items() if k not in different} == {
        k: v for k, v in fetch.items() if k not in different}
    assert probe["ExecStart"].split()[1:] == ["probe", "send"]
    assert unit("helpdesk-fetch-probe.timer")["Timer"]["OnCalendar"] == "hourly"


def cron_jobs() -> tuple[dict[str, str], dict[str, list[str]]]:
    """The crontab's variables, and its jobs by subcommand: {"fetch": [fields...], ...}."""
    lines = [line for line in (CONTRIB / "helpdesk-fetch.cron").read_text().splitlines()
             if line and not line.startswith("#")]
    env = dict(line.split("=", 1) for line in lines if "=" in line.split()[0])
    jobs = [line.split() for line in lines if "=" not in line.split()[0]]
    return env, {job[7]: job for job in jobs}


def test_crontab_and_services_run_the_same_commands():
    env, jobs = cron_jobs()
    assert set(jobs) == {"fetch", "probe"}
    for name, schedule in (("helpdesk-fetch", "* * * * *"),
                           ("helpdesk-fetch-probe", "17 * * * *")):
        service = unit(f"{name}.service")["Service"]
        minute, hour, day, month, weekday, user, *command = jobs[
            service["ExecStart"].split()[1]]
        assert " ".join((minute, hour, day, month, weekday)) == schedule
        assert user == "helpdesk"
        assert service["ExecStart"].split() == command
        assert service["Environment"] == f"HELPDESK_FETCH_CONFIG={env['HELPDESK_FETCH_CONFIG']}"
        assert command[1] in subcommands(cli)


def test_readme_shows_both():
    readme = (ROOT / "README.md").read_text()
    for line in (CONTRIB / "helpdesk-fetch.cron").read_text().splitlines():
        if line[:1].isdigit() or line.startswith("* "):
            assert line in readme
    for name in ("helpdesk-fetch.service", "helpdesk-fetch.timer",
                 "helpdesk-fetch-probe.service", "helpdesk-fetch-probe.timer"):
        assert f"contrib/{name}" in readme


def monitoring_argv(words: list[str], config) -> list[str]:
    """A monitoring system's command line as this test runs it: without sudo, with this
    checkout's helpdesk-fetch and the test's accounts file."""
    assert words[:4] == ["/usr/bin/sudo", "-n", "-u", "helpdesk"], words
    words = words[4:]
    assert words[:3] == ["/opt/helpdesk-fetch/bin/helpdesk-fetch", "--config",
                         "/etc/helpdesk-fetch/accounts.toml"], words
    return [sys.executable, "-m", "helpdesk_fetch", "--config", str(config), *words[3:]]


def test_the_nagios_and_icinga_commands_run_the_check(tmp_path, write_config):
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    nagios = (CONTRIB / "nagios-helpdesk-fetch.cfg").read_text()
    nrpe = re.search(r"command\[check_helpdesk_fetch\]=(.*)", nagios).group(1)
    icinga = (CONTRIB / "icinga2-helpdesk-fetch.conf").read_text()
    command = json.loads(re.search(r"command = (\[[^]]*\])", icinga).group(1))
    max_age = re.search(r'"(--max-age)" = "\$helpdesk_fetch_max_age\$"', icinga).group(1)

    for argv in (monitoring_argv(shlex.split(nrpe), config),
                 monitoring_argv(command, config) + [max_age, "15"]):
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                              env=environment())
        assert done.returncode == 2, done  # the account never ran: CRITICAL
        assert done.stdout.startswith("HELPDESK-FETCH CRITICAL - local: no successful run")
    sudoers = (CONTRIB / "sudoers-helpdesk-fetch-check").read_text()
    words = shlex.split(nrpe)[4:]
    assert f"{' '.join(words[:words.index('check') + 1])} *" in sudoers  # what sudo allows


def test_the_prometheus_textfile_script(tmp_path, write_config):
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "box" / sub).mkdir(parents=True)
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    subprocess.run([sys.executable, "-m", "helpdesk_fetch", "--config", str(config), "fetch"],
                   cwd=ROOT, env=environment(), check=True)
    output = tmp_path / "textfile" / "helpdesk_fetch.prom"
    output.parent.mkdir()

    done = subprocess.run([sys.executable, str(CONTRIB / "helpdesk-fetch-textfile"),
                           str(output), sys.executable, "-m", "helpdesk_fetch", "--config",
                           str(config)], cwd=ROOT, env=environment(), capture_output=True,
                          text=True)

    assert (done.returncode, done.stderr) == (0, "")
    text = output.read_text()
    samples = {}
    for line in text.splitlines():  # Prometheus' text format: comments, then name value
        if line.startswith("# "):
            assert re.fullmatch(r"# (HELP|TYPE) helpdesk_fetch_\w+ .+", line), line
            continue
        name, value = line.rsplit(" ", 1)
        assert re.fullmatch(r'helpdesk_fetch_\w+(\{account="[a-z0-9._-]+"\})?', name), line
        samples[name] = float(value)
    assert samples["helpdesk_fetch_state"] == 0
    assert samples['helpdesk_fetch_minutes_since_success{account="local"}'] < 5
    assert samples["helpdesk_fetch_failed_messages"] == 0
    assert samples["helpdesk_fetch_messages_delivered_last_hour"] == 0
    assert oct(output.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in output.parent.iterdir()] == ["helpdesk_fetch.prom"]
