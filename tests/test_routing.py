"""[[rules]] (spec §10) end to end: routing by each condition, sub-addresses, ignore, auto-mails
off, monitoring correlation and recovery across runs, a rule changed between runs, every
validation error, and `rules test` on files and standard input. Dovecot in, a real SMTP server
out, the command line in between."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests import kinds_samples as samples
from tests.desk import Desk as CliDesk
from tests.mails import message, message_id_of

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
RESOURCES = [{"name": name, "members": [f"{name}-lead@example.com"]}
             for name in ("it-support", "sales", "billing", "operations")]
NAGIOS = "nagios@monitor.example.com"


class Desk(CliDesk):
    """Two IMAP accounts (helpdesk, monitoring) with rules, auto-mails on, through the CLI."""

    def __init__(self, dovecot, mail_user, write_config, smtp, run) -> None:
        users = {"helpdesk": mail_user, "monitoring": f"{mail_user}-mon"}
        super().__init__(dovecot, users, None, smtp, run)
        self._write = write_config

    def rules(self, *rules: dict, **account_keys) -> Desk:
        """(Re)write the accounts file with these [[rules]]."""
        accounts = [self.dovecot.account(name, user, resource="it-support",
                                         **account_keys.get(name, {}))
                    for name, user in self.users.items()]
        self.config = self._write(accounts, smtp=self.smtp.config(), resources=RESOURCES)
        data = tomllib.loads(self.config.read_text())
        data["rules"] = list(rules)
        self.config.write_text(tomli_w.dumps(data))
        return self

    def tickets(self) -> dict[str, dict]:
        """Tickets by subject, each with its messages."""
        return {t["subject"]: self.json("tickets", "show", t["number"])
                for t in self.json("tickets", "list")}

    def automails(self) -> list[tuple[str, list[str]]]:
        return [(m["X-Helpdesk-Fetch"].split(";")[0], rcpts) for rcpts, m in self.smtp.mails()]


@pytest.fixture
def desk(dovecot, mail_user, write_config, smtp, run):
    return Desk(dovecot, mail_user, write_config, smtp, run)


def routed(desk: Desk) -> dict[str, tuple[str, str | None]]:
    """Subject -> (resource, the rule named on its first message)."""
    return {subject: (t["resource"], t["messages"][0]["rule"])
            for subject, t in desk.tickets().items()}


# -- routing by each condition ---------------------------------------------------------------------

CONDITIONS = {
    "accounts": ({"accounts": ["monitoring"]}, {}, {"account": "monitoring"}),
    "to": ({"to": ["sales@example.com"]}, {"to": "sales@example.com"}, {}),
    "cc": ({"to": ["sales@example.com"]}, {"headers": {"Cc": "Sales <SALES@example.com>"}}, {}),
    "delivered-to": ({"to": ["sales@example.com"]},
                     {"headers": {"Delivered-To": "sales@example.com"}}, {}),
    "x-original-to": ({"to": ["sales@*"]}, {"headers": {"X-Original-To": "sales@example.net"}},
                      {}),
    "from": ({"from": ["*@partner.example"]}, {"sender": "Pat <pat@Partner.example>"}, {}),
    "subject": ({"subject": "quote|offer"}, {"subject": "Your OFFER for 20 laptops"}, {}),
    "headers": ({"headers": {"X-Customer-Tier": "^gold$"}},
                {"headers": {"X-Customer-Tier": "Gold"}}, {}),
}


@SQLITE_ONLY  # matching is the same code whatever the database
@pytest.mark.parametrize("condition", CONDITIONS)
def test_routing_by_each_condition(desk, condition):
    rule, matching, where = CONDITIONS[condition]
    desk.rules({"name": "sales", "resource": "sales", **rule})
    mail = {"subject": "Your offer for 20 laptops", **matching}
    mail["subject"] = "matching " + mail["subject"]
    desk.send(message(**mail), **where)
    desk.send(message("plain request"))

    desk.fetch()

    assert routed(desk) == {mail["subject"]: ("sales", "sales"),
                            "plain request": ("it-support", None)}
    assert desk.json("status")["accounts"][0 if not where else 1]["last_run"][
        "rule_counts"] == {"sales": 1}


def test_every_condition_of_a_rule_must_hold_and_the_first_rule_wins(desk):
    desk.rules({"name": "partner-quotes", "from": ["*@partner.example"], "subject": "quote",
                "resource": "sales"},
               {"name": "partner", "from": ["*@partner.example"], "resource": "billing"},
               {"name": "quotes", "subject": "quote", "resource": "operations"})
    desk.send(message("quote please", sender="pat@partner.example"),
              message("invoice", sender="pat@partner.example"),
              message("quote for me", sender="carol@example.org"))

    desk.fetch()

    assert routed(desk) == {"quote please": ("sales", "partner-quotes"),
                            "invoice": ("billing", "partner"),
                            "quote for me": ("operations", "quotes")}


@SQLITE_ONLY
def test_sub_addresses(desk):
    desk.rules({"name": "billing", "to": ["helpdesk+billing@"], "resource": "billing"},
               {"name": "sales-ext", "to": ["*+sales@example.com"], "resource": "sales"},
               {"name": "sales", "to": ["sales@example.com"], "resource": "operations"})
    desk.send(message("one", to="helpdesk+billing@example.com"),
              message("two", to="HELPDESK+Billing@elsewhere.example"),
              message("three", to="support+sales@example.com"),
              message("four", to="sales+eu@example.com"),
              message("five", to="helpdesk@example.com"))

    desk.fetch()

    assert routed(desk) == {"one": ("billing", "billing"), "two": ("billing", "billing"),
                            "three": ("sales", "sales-ext"), "four": ("operations", "sales"),
                            "five": ("it-support", None)}


def test_ignore_keeps_the_mail_out_of_the_tickets(desk):
    desk.rules({"name": "spam", "headers": {"X-Spam-Flag": "^yes$"}, "action": "ignore"})
    desk.send(message("Printer broken"))
    desk.fetch()
    [ticket] = desk.json("tickets", "list")
    sent = len(desk.smtp.messages)
    spam = message("Cheap pills", headers={"X-Spam-Flag": "YES"})
    reply = message(f"Re: {ticket['tag']} Printer broken", headers={"X-Spam-Flag": "yes"})

    desk.send(spam, reply)
    desk.fetch()

    assert desk.json("tickets", "show", ticket["number"])["message_count"] == 1
    assert [(m["subject"], m["reason"]) for m in desk.json("ignored", "list")] == [
        ("Cheap pills", "spam"), (f"Re: {ticket['tag']} Printer broken", "spam")]
    assert len(desk.smtp.messages) == sent and desk.dovecot.messages(desk.users["helpdesk"]) == []
    assert desk.json("status")["accounts"][0]["last_run"]["rule_counts"] == {"spam": 2}


def test_mail_restored_past_an_ignore_rule_is_decided_by_the_next_rule_that_makes_requests(desk):
    """`ignored restore` overrides the rule that ignored it: the message goes through the rules
    as if that rule (and any other that ignores) were not there. `tickets show` names the rule
    that decided it, or none (spec §10.1), never the ignoring one."""
    desk.rules({"name": "spam", "headers": {"X-Spam-Flag": "^yes$"}, "action": "ignore"},
               {"name": "junk", "subject": "quote", "action": "ignore"},
               {"name": "sales", "subject": "quote", "resource": "sales"})
    desk.send(message("Not spam at all", headers={"X-Spam-Flag": "YES"}),
              message("A quote for 20 laptops", headers={"X-Spam-Flag": "YES"}))
    desk.fetch()
    kept = desk.json("ignored", "list")
    assert [m["reason"] for m in kept] == ["spam", "spam"]

    for row in kept:
        assert desk.run("ignored", "restore", str(row["id"]), config=desk.config).exit_code == 0

    tickets = desk.tickets()
    assert {subject: (t["resource"], [m["rule"] for m in t["messages"] if m["direction"] == "in"])
            for subject, t in tickets.items()} == {
        "Not spam at all": ("it-support", [None]),
        "A quote for 20 laptops": ("sales", ["sales"])}


def test_automail_off_for_a_sender_and_on_for_a_quiet_account(desk):
    desk.rules({"name": "partner", "from": ["*@desk.partner.example"], "automail": False},
               {"name": "vip", "from": ["boss@example.org"], "automail": True},
               monitoring={"automail": False})
    desk.send(message("From their ticket system", sender="robot@desk.partner.example"),
              message("Normal request"))
    desk.send(message("Urgent", sender="boss@example.org"),
              message("Quiet", sender="someone@example.org"), account="monitoring")

    desk.fetch()

    staff = ("new_ticket_resource", ["it-support-lead@example.com"])
    assert sorted(desk.automails()) == sorted([("new_ticket", ["carol@example.org"]), staff,
                                               ("new_ticket", ["boss@example.org"]), staff])
    assert len(desk.tickets()) == 4


def said_of(output: str, raws: list[bytes]) -> dict[str, str]:
    """What *output* says of each message: its text from its Message-ID to the next one's,
    by subject (however many lines a message takes)."""
    where = sorted((output.index(f"<{message_id_of(raw)}>"), raw) for raw in raws)
    ends = [start for start, _ in where[1:]] + [len(output)]
    return {re.search(rb"(?m)^Subject: (.*?)\r?$", raw).group(1).decode(): output[start:end]
            for (start, raw), end in zip(where, ends, strict=True)}


@SQLITE_ONLY  # the same report whatever the database
def test_a_dry_run_names_the_rule_that_decides_each_message_and_changes_nothing(desk):
    desk.rules({"name": "sales", "to": ["sales@example.com"], "resource": "sales"},
               {"name": "spam", "headers": {"X-Spam-Flag": "^yes$"}, "action": "ignore"},
               NAGIOS_RULE)
    desk.fetch()  # the database exists: a dry run creates none
    quote = message("Quote for laptops", to="sales@example.com")
    spam = message("Cheap pills", headers={"X-Spam-Flag": "YES"})
    plain = message("Printer broken")
    problem = alert("PROBLEM", "web01")
    desk.send(quote, spam, plain)
    desk.send(problem, account="monitoring")

    result = desk.fetch("--dry-run")

    said = said_of(result.stdout, [quote, spam, plain, problem])
    assert "rule sales" in said["Quote for laptops"] and " in sales" in said["Quote for laptops"]
    assert "rule spam" in said["Cheap pills"] and "ignored" in said["Cheap pills"]
    assert "rule nagios" in said["** PROBLEM Host Alert: web01 is BAD **"]
    assert "rule " not in said["Printer broken"] and " in it-support" in said["Printer broken"]
    assert "nothing was changed" in result.stdout
    assert desk.json("tickets", "list") == [] and desk.json("ignored", "list") == []
    assert len(desk.dovecot.messages(desk.users["helpdesk"])) == 3
    assert len(desk.dovecot.messages(desk.users["monitoring"])) == 1
    assert desk.smtp.messages == []
    assert all(a["last_run"]["rule_counts"] == {} for a in desk.json("status")["accounts"])


def test_status_and_accounts_list_count_the_messages_each_rule_decided(desk):
    """Spec §10.1: per account, how many messages each rule decided in its last run — in
    `status` and `accounts list`, as text and as JSON; an account no rule decided is not
    named, and a later run replaces the counts."""
    from tests.test_terminal import at_80_columns

    desk.rules({"name": "sales", "to": ["sales@example.com"], "resource": "sales"},
               {"name": "spam", "headers": {"X-Spam-Flag": "^yes$"}, "action": "ignore"},
               NAGIOS_RULE)
    desk.send(message("Quote one", to="sales@example.com"),
              message("Quote two", to="sales@example.com"),
              message("Cheap pills", headers={"X-Spam-Flag": "YES"}), message("Printer broken"))
    desk.send(alert("PROBLEM", "web01"), alert("PROBLEM", "db02"), account="monitoring")

    desk.fetch()

    counts = {"helpdesk": {"sales": 2, "spam": 1}, "monitoring": {"nagios": 2}}
    assert {a["name"]: a["last_run"]["rule_counts"]
            for a in desk.json("accounts", "list")} == counts
    assert {a["name"]: a["last_run"]["rule_counts"]
            for a in desk.json("status")["accounts"]} == counts
    status = desk.run("status", config=desk.config)
    assert status.exit_code == 0, status.output
    in_a_terminal = "\n".join(at_80_columns("accounts", "list", config=desk.config))
    for text in (status.stdout, in_a_terminal):
        decided = text.split("Messages each rule decided in the last run", 1)[1]
        lines = {line.split(":")[0].strip(): line for line in decided.splitlines()[1:3]}
        assert set(lines) == {"helpdesk", "monitoring"}, text
        assert re.search(r"\bsales\D+2\b", lines["helpdesk"]), text
        assert re.search(r"\bspam\D+1\b", lines["helpdesk"]), text
        assert re.search(r"\bnagios\D+2\b", lines["monitoring"]), text

    desk.send(message("Printer still broken"))
    desk.fetch()

    assert [a["last_run"]["rule_counts"] for a in desk.json("status")["accounts"]] == [{}, {}]
    assert "Messages each rule decided" not in desk.run("status", config=desk.config).stdout


# -- monitoring correlation (§10.2) ----------------------------------------------------------------

NAGIOS_RULE = {"name": "nagios", "from": ["nagios@*"],
               "subject": r"(?P<state>PROBLEM|RECOVERY).*?Alert: (?P<host>[^/ ]+)"
                          r"(/(?P<service>\S+))?",
               "correlate": ["host", "service"], "resolve": {"state": "RECOVERY"},
               "resource": "operations"}


def alert(state: str, host: str, service: str | None = None, *, sender: str = NAGIOS) -> bytes:
    what = f"{host}/{service}" if service else host
    kind = "Service" if service else "Host"
    status = "OK" if state == "RECOVERY" else "BAD"
    return message(f"** {state} {kind} Alert: {what} is {status} **", sender=sender,
                   body=f"Notification Type: {state}\n")


def by_key(desk: Desk) -> dict[str, list[dict]]:
    """The tickets of each alert subject's host/service, oldest first."""
    found: dict[str, list[dict]] = {}
    for ticket in desk.json("tickets", "list"):
        key = re.search(r"Alert: (\S+)", ticket["subject"]).group(1)
        found.setdefault(key, []).append(desk.json("tickets", "show", ticket["number"]))
    return found


def test_alerts_correlate_across_runs_and_a_recovery_closes_their_ticket(desk):
    desk.rules(NAGIOS_RULE)
    desk.send(alert("PROBLEM", "web01"), alert("PROBLEM", "web01", "HTTP"),
              alert("PROBLEM", "db02"), account="monitoring")
    desk.fetch()
    first = by_key(desk)
    assert sorted(first) == ["db02", "web01", "web01/HTTP"]
    [web01] = first["web01"]
    assert (web01["status"], web01["resource"]) == ("new", "operations")
    assert [(m["kind"], m["rule"]) for m in web01["messages"] if m["direction"] == "in"] == [
        ("alert", "nagios")]
    assert desk.run("tickets", "set-status", web01["number"], "in_progress",
                    config=desk.config).exit_code == 0
    assert sorted(kind for kind, _ in desk.automails()) == ["new_ticket_resource"] * 3
    sent = len(desk.smtp.messages)

    desk.send(alert("PROBLEM", "WEB01"), account="monitoring")  # again, a run later
    desk.fetch()

    [web01] = by_key(desk)["web01"]
    assert (web01["message_count"], web01["status"]) == (2, "in_progress")
    assert web01["escalation_due_at"] == first["web01"][0]["escalation_due_at"]

    desk.send(alert("RECOVERY", "web01"), account="monitoring")
    desk.fetch()

    tickets = by_key(desk)
    [web01] = tickets["web01"]
    assert (web01["message_count"], web01["status"]) == (3, "closed")
    assert tickets["web01/HTTP"][0]["status"] == "new"  # the service on it is still down
    assert tickets["db02"][0]["message_count"] == 1
    assert len(desk.smtp.messages) == sent  # appended alerts and recoveries: no auto-mail

    desk.send(alert("PROBLEM", "web01"), account="monitoring")  # the next problem
    desk.fetch()

    reopened = by_key(desk)["web01"]
    assert [(t["status"], t["message_count"]) for t in reopened] == [("closed", 3), ("new", 1)]


def test_a_recovery_without_an_open_problem_is_ignored(desk):
    desk.rules(NAGIOS_RULE)
    desk.send(alert("RECOVERY", "web01", "HTTP"), account="monitoring")

    desk.fetch()

    assert desk.json("tickets", "list") == []
    assert [m["reason"] for m in desk.json("ignored", "list")] == ["nagios"]


def race(config: Path, first: tuple, second: tuple, monkeypatch) -> list:
    """Ingest *first* and *second* ((account, raw)) at once, in two threads as two workers
    would: the first pauses inside its transaction, before it stores, until the second has had
    a second to go past it. Returns the two outcomes and whether the second had to wait."""
    from helpdesk_fetch.config import load
    from helpdesk_fetch.ingest.pipeline import Pipeline, Source
    from helpdesk_fetch.store import write

    pipeline = Pipeline(load(config))
    pipeline.parser.start()  # the parse worker starts from the main thread, as fetch starts it
    inside, go = threading.Event(), threading.Event()
    store = write.store_inbound

    def paused(*args, **kwargs):
        if threading.current_thread().name == "first":
            inside.set()
            go.wait(30)
        return store(*args, **kwargs)

    monkeypatch.setattr(write, "store_inbound", paused)
    outcomes: dict[str, object] = {}

    def ingest(name: str, account: str, raw: bytes) -> None:
        outcomes[name] = pipeline.ingest(Source(account, "it-support"), raw, f"race-{name}")

    threads = {name: threading.Thread(target=ingest, name=name, args=(name, *job))
               for name, job in (("first", first), ("second", second))}
    threads["first"].start()
    assert inside.wait(30)
    threads["second"].start()
    threads["second"].join(1.0)
    waited = threads["second"].is_alive()
    go.set()
    for thread in threads.values():
        thread.join(60)
    pipeline.close()
    return [outcomes["first"], outcomes["second"], waited]


def test_two_workers_with_alerts_of_one_key_open_one_ticket(desk, monkeypatch):
    """A lock on the alert's key: the second waits for the first's commit and appends."""
    desk.rules(NAGIOS_RULE)
    desk.fetch()  # the database exists

    first, second, waited = race(desk.config, ("helpdesk", alert("PROBLEM", "web01")),
                                 ("monitoring", alert("PROBLEM", "web01")), monkeypatch)

    assert waited and (first.kind, second.kind) == ("stored", "stored")
    assert (first.decision.action, second.decision.action) == ("new", "append")
    [web01] = by_key(desk)["web01"]
    assert web01["message_count"] == 2


def test_two_workers_with_two_copies_of_a_mail_store_it_once(desk, monkeypatch):
    """A lock on the Message-ID: the second copy waits for the first's commit (spec §4.1)."""
    desk.rules()
    desk.fetch()
    raw = message("VPN down")

    first, second, waited = race(desk.config, ("helpdesk", b"Delivered-To: a@x\r\n" + raw),
                                 ("monitoring", b"Delivered-To: b@x\r\n" + raw), monkeypatch)

    assert waited and (first.kind, second.kind) == ("stored", "duplicate")
    assert [t["message_count"] for t in desk.json("tickets", "list")] == [1]


def test_a_rule_changed_between_runs(desk):
    desk.rules({"name": "sales", "to": ["sales@example.com"], "resource": "sales"})
    first = message("Quote", to="sales@example.com")
    desk.send(first)
    desk.fetch()

    desk.rules({"name": "orders", "to": ["sales@example.com"], "resource": "billing"})
    desk.send(message("Another quote", to="sales@example.com"),
              message("Re: Quote", to="sales@example.com",
                      in_reply_to=f"<{message_id_of(first)}>"))
    desk.fetch()

    tickets = desk.tickets()
    assert (tickets["Quote"]["resource"], tickets["Another quote"]["resource"]) == (
        "sales", "billing")
    assert [m["rule"] for m in tickets["Quote"]["messages"] if m["direction"] == "in"] == [
        "sales", "orders"]  # the reply followed its ticket; the rule that decided it is named


# -- the README's monitoring rules against sample mails --------------------------------------------

def readme_monitoring_rules() -> list[dict]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- monitoring rules: tested by tests/test_routing.py -->", 1)[1]
    return tomllib.loads(block.split("```toml\n", 1)[1].split("```", 1)[0])["rules"]


def again(raw: bytes) -> bytes:
    """The same alert sent once more: a new Message-ID."""
    return re.sub(rb"(?im)^(message-id:\s*<)", rb"\1again-", raw, count=1)


PAIRS = [(samples.nagios_host_problem, samples.nagios_host_recovery, "nagios"),
         (samples.nagios_service_problem, samples.nagios_service_recovery, "nagios"),
         (samples.icinga2_host_problem, samples.icinga2_host_recovery, "icinga"),
         (samples.icinga2_service_problem, samples.icinga2_service_recovery, "icinga"),
         (samples.zabbix_problem, samples.zabbix_resolved, "zabbix"),
         (samples.alertmanager_firing, samples.alertmanager_resolved, "alertmanager"),
         (samples.monit_failed, samples.monit_succeeded, "monit")]


def test_the_readme_rules_for_each_monitoring_system(desk):
    desk.rules(*readme_monitoring_rules())
    for problem, recovery, _ in PAIRS:
        desk.send(problem(), again(problem()), recovery(), account="monitoring")

    desk.fetch()

    tickets = [desk.json("tickets", "show", t["number"]) for t in desk.json("tickets", "list")]
    assert len(tickets) == len(PAIRS)
    for ticket, (problem, _, rule) in zip(tickets, PAIRS, strict=True):
        inbound = [(m["kind"], m["rule"]) for m in ticket["messages"] if m["direction"] == "in"]
        assert inbound == [("alert", rule)] * 3, problem.__name__
        assert (ticket["status"], ticket["resource"]) == ("closed", "operations"), problem.__name__


# -- validation ------------------------------------------------------------------------------------

VALID = {"name": "r", "subject": "(?P<host>x)"}
ERRORS = [
    ({"sbject": "x"}, "rule 'r': key 'rules.sbject': unknown key; did you mean 'subject'?"),
    ({"subject": "(x"}, "rule 'r': key 'rules.subject': not a valid regular expression: "
                        "missing ), unterminated subpattern"),
    ({"headers": {"X-Spam": "[a"}}, "rule 'r': key 'rules.headers.X-Spam': not a valid "
                                    "regular expression"),
    ({"headers": {"X Spam": "a"}}, "rule 'r': key 'rules.headers': 'X Spam' is not a header"),
    ({"headers": "X-Spam: yes"}, "rule 'r': key 'rules.headers': expected a table of strings"),
    ({"subject": ["a", "b"]}, "rule 'r': key 'rules.subject': expected a string, got a list"),
    ({"resource": "nowhere"}, "rule 'r': key 'rules.resource': no resource 'nowhere' "
                              "(resources: it-support)"),
    ({"accounts": ["helpdsk"]}, "rule 'r': key 'rules.accounts': no account 'helpdsk'"),
    ({"correlate": ["service"]}, "rule 'r': key 'rules.correlate': the subject regex defines "
                                 "no group (?P<service>...) (it defines: host)"),
    ({"subject": None, "correlate": ["host"]}, "rule 'r': key 'rules.correlate': correlate "
                                               "needs a subject regex"),
    ({"correlate": ["host"], "resolve": {"state": "OK"}},
     "rule 'r': key 'rules.resolve': the subject regex defines no group (?P<state>...)"),
    ({"correlate": ["host"], "resolve": {"host": "(("}},
     "rule 'r': key 'rules.resolve.host': not a valid regular expression"),
    ({"resolve": {"host": "x"}}, "rule 'r': key 'rules.resolve': resolve closes a correlated "
                                 "ticket: it needs correlate"),
    ({"action": "drop"}, "rule 'r': key 'rules.action': 'drop' is not one of ticket, ignore"),
    ({"action": "ignore", "resource": "it-support"},
     "rule 'r': key 'rules.resource': does nothing with action = \"ignore\""),
    ({"automail": "no"}, "rule 'r': key 'rules.automail': expected true or false, got a string"),
    ({"to": [""]}, "rule 'r': key 'rules.to': an empty entry matches nothing"),
    ({"name": "Sales Team"}, "rule 'Sales Team': key 'rules.name': rule names are 1 to 64"),
]


@SQLITE_ONLY  # the accounts file is checked before any database is opened
@pytest.mark.parametrize(("change", "error"), ERRORS, ids=[e[1].split(":")[1] + str(i)
                                                            for i, e in enumerate(ERRORS)])
def test_every_validation_error_names_the_rule_and_the_key(write_config, run, change, error):
    rule = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    config = write_config([{"name": "helpdesk", "protocol": "maildir", "path": "box"}])
    data = tomllib.loads(config.read_text())
    data["rules"] = [rule]
    config.write_text(tomli_w.dumps(data))

    result = run("accounts", "list", config=config)

    assert result.exit_code == 2
    assert f"{config}: {error}" in result.stderr, result.stderr


@SQLITE_ONLY
def test_two_rules_with_one_name_and_a_rule_without_one(write_config, run):
    config = write_config()
    data = tomllib.loads(config.read_text())
    for rules, error in (([{"name": "a"}, {"name": "a"}], "rule 'a': key 'rules.name': two "
                                                           "rules have this name"),
                         ([{"name": "a"}, {"to": ["x@y"]}], "the 2nd [[rules]] table: key "
                                                            "'rules.name': missing (required)")):
        data["rules"] = rules
        config.write_text(tomli_w.dumps(data))
        result = run("status", config=config)
        assert result.exit_code == 2 and error in result.stderr, result.stderr


# -- rules test ------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_rules_test_on_files_and_standard_input(desk, tmp_path):
    desk.rules(NAGIOS_RULE, {"name": "sales", "to": ["sales@example.com"], "resource": "sales",
                             "automail": False})
    problem, recovery = tmp_path / "problem.eml", tmp_path / "recovery.eml"
    problem.write_bytes(alert("PROBLEM", "web01"))
    recovery.write_bytes(b"From nagios@monitor.example.com Mon Nov 30 09:12:44 2026\n"
                         + alert("RECOVERY", "web01"))  # an mbox From line is dropped
    quote = message("Quote", to="sales@example.com")

    before = desk.run("rules", "test", "--account", "monitoring", str(problem), str(recovery),
                      config=desk.config)

    assert before.exit_code == 0, before.output
    assert f"{problem}: <" in before.stdout
    assert "-> a new ticket in operations [alert, rule nagios]: an alert with no open ticket " \
           "for its key: a new one; auto-mails: new_ticket_resource to " \
           "operations-lead@example.com" in before.stdout
    assert "-> ignored (nagios) [alert, rule nagios]: rule nagios: a recovery, and no ticket " \
           "of its key is open" in before.stdout
    assert "(as mail of account 'monitoring'; nothing was stored or sent)" in before.stdout
    assert desk.smtp.messages == [] and not (tmp_path / "helpdesk.db").exists()

    desk.send(problem.read_bytes(), account="monitoring")
    desk.fetch()
    number = desk.json("tickets", "list")[0]["number"]
    stdin = desk.run("rules", "test", "--json", "-", str(tmp_path / "missing.eml"),
                     input=quote.decode(), config=desk.config)
    after = desk.run("rules", "test", str(recovery), config=desk.config)

    assert stdin.exit_code == 1 and "cannot read" in stdin.stderr
    [shown] = json.loads(stdin.stdout)
    assert {k: shown[k] for k in ("file", "outcome", "kind", "rule", "ticket", "resource",
                                  "automails", "ignored")} == {
        "file": "-", "outcome": "planned", "kind": "message", "rule": "sales", "ticket": None,
        "resource": "sales", "automails": [], "ignored": None}
    assert f"{recovery}: <" in after.stdout  # the message, then its verdict on a line below
    assert f"\n  -> ticket {number} (by correlation) [alert, rule nagios]: an alert's " \
           "recovery: appended, ticket closed\n" in after.stdout
    assert after.stdout.endswith("(as mail of account 'helpdesk'; nothing was stored or sent)\n"
                                 "(a message without 'auto-mails' causes none)\n")
    assert desk.json("tickets", "list")[0]["status"] == "new"  # nothing changed
    # Mail stored already, saved to try the rules on: judged as new mail, and said so
    stored = desk.run("rules", "test", "--account", "monitoring", str(problem),
                      config=desk.config)
    assert "-> (stored already: fetch would only delete it; as new mail:) ticket " \
           f"{number} (by correlation) [alert, rule nagios]" in stored.stdout
    [judged] = desk.json("rules", "test", "--account", "monitoring", str(problem))
    assert judged["stored_already"] is True and judged["rule"] == "nagios"
    assert judged["ticket"] == number and judged["outcome"] == "planned"


@SQLITE_ONLY
def test_rules_test_says_why_a_message_gets_no_auto_mail(desk, tmp_path):
    """Old mail (saved from a mail program) is backlog to an account that has not run yet; a
    robot is never answered: said on the message's line, not only at -v."""
    old = tmp_path / "old.eml"
    old.write_bytes(message("Printer broken", date=dt.datetime(2020, 1, 6, tzinfo=dt.UTC)))
    robot = tmp_path / "robot.eml"
    robot.write_bytes(message("Your order", sender="no-reply-aws@amazon.example"))
    quiet = tmp_path / "quiet.eml"
    quiet.write_bytes(message("Quote for 20 laptops"))
    desk.rules({"name": "quotes", "subject": "^quote", "automail": False})

    said = desk.run("rules", "test", str(old), str(robot), str(quiet), config=desk.config)
    json_run = desk.run("rules", "test", "--json", str(old), config=desk.config)
    assert json_run.exit_code == 0, json_run.output + json_run.stderr
    shown = json.loads(json_run.stdout)

    assert "; no auto-mail: dated before the account's first run (backlog)\n" in said.stdout
    assert "new_ticket_resource to " in said.stdout  # the staff are told, the robot is not:
    assert "; none to the sender: a daemon sender (no-reply-aws@amazon.example)\n" in said.stdout
    assert "; no auto-mail: automail = false in rule quotes\n" in said.stdout
    assert shown[0]["no_automail"] == "dated before the account's first run (backlog)"
