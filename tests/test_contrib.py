"""``contrib/``: the crontab line and the systemd units are valid and agree with each other."""

from __future__ import annotations

import configparser
import shutil
import subprocess

from helpdesk_fetch import config
from helpdesk_fetch.cli import cli, subcommands
from tests.proc import ROOT

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
    service = (CONTRIB / "helpdesk-fetch.service").read_text()
    service = service.replace("/opt/helpdesk-fetch/bin/helpdesk-fetch", shutil.which("true"))
    service = service.replace("User=helpdesk", "User=daemon").replace("Group=helpdesk",
                                                                       "Group=daemon")
    (tmp_path / "helpdesk-fetch.service").write_text(service)
    shutil.copy(CONTRIB / "helpdesk-fetch.timer", tmp_path)

    done = subprocess.run(["systemd-analyze", "verify", "helpdesk-fetch.service",
                           "helpdesk-fetch.timer"], cwd=tmp_path, capture_output=True,
                          text=True)

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


def test_crontab_and_service_run_the_same_command():
    lines = [line for line in (CONTRIB / "helpdesk-fetch.cron").read_text().splitlines()
             if line and not line.startswith("#")]
    env = dict(line.split("=", 1) for line in lines if "=" in line.split()[0])
    [job] = [line.split() for line in lines if "=" not in line.split()[0]]
    minute, hour, day, month, weekday, user, *command = job
    assert (minute, hour, day, month, weekday, user) == ("*", "*", "*", "*", "*", "helpdesk")
    service = unit("helpdesk-fetch.service")["Service"]
    assert service["ExecStart"].split() == command
    assert service["Environment"] == f"HELPDESK_FETCH_CONFIG={env['HELPDESK_FETCH_CONFIG']}"
    assert command[1] in subcommands(cli)


def test_readme_shows_both():
    readme = (ROOT / "README.md").read_text()
    job = [line for line in (CONTRIB / "helpdesk-fetch.cron").read_text().splitlines()
           if line.startswith("* ")][0]
    assert job in readme
    assert "contrib/helpdesk-fetch.service" in readme and "helpdesk-fetch.timer" in readme
