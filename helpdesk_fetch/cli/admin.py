"""``ingest`` (the "do not read mailboxes" switch) and ``status``."""

from __future__ import annotations

import click

from helpdesk_fetch.cli import App, cli, pass_app
from helpdesk_fetch.cli.render import ago, echo_json, local, note, problem_of, rule_counts, table


@cli.group()
def ingest() -> None:
    """The switch that stops this machine from reading mailboxes.

    Turn it off before cloning a production VM: the switch is a file on this machine, so the
    clone starts with it off and never eats production mail.

    \b
    Example:
      helpdesk-fetch ingest disable --reason "cloning to test VM"
    """


@ingest.command("disable")
@click.option("--reason", help="Why, for whoever finds the switch off.")
@pass_app
def ingest_disable(app: App, reason: str | None) -> None:
    """Stop reading mailboxes on this machine: `fetch` then reads nothing and exits 0.

    \b
    Example:
      helpdesk-fetch ingest disable --reason "VM clone for testing"
    """
    from helpdesk_fetch import state

    switch, was_on = state.disable_ingest(app.config().settings.state_dir, reason)
    if was_on:
        note("Ingest disabled: `fetch` reads no mailbox on this machine until "
             "`helpdesk-fetch ingest enable`.", style="bold yellow")
        return
    why = f"; its reason is now: {reason}" if reason else \
        f" ({switch['reason']})" if switch["reason"] else ""
    note(f"Ingest was already disabled, since {switch['disabled_at'] or 'an unknown time'} by "
         f"{switch['by'] or 'an unknown user'}{why}.", style="yellow")


@ingest.command("enable")
@pass_app
def ingest_enable(app: App) -> None:
    """Read mailboxes again on this machine.

    \b
    Example:
      helpdesk-fetch ingest enable
    """
    from helpdesk_fetch import state

    was_off = state.enable_ingest(app.config().settings.state_dir)
    note("Ingest enabled." if was_off else "Ingest was already enabled.", style="green")


@ingest.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def ingest_status(app: App, as_json: bool) -> None:
    """Whether this machine reads mailboxes, and if not: since when, by whom, why.

    \b
    Example:
      helpdesk-fetch ingest status
    """
    from helpdesk_fetch import state

    report = state.switch_report(app.config().settings.state_dir)
    switch = report["ingest_switch"]
    if as_json:
        return echo_json(report)
    if report["ingest_switch_error"]:
        _print_unreadable(report["ingest_switch_error"])
    elif switch is None:
        note("Ingest is enabled: `fetch` reads mailboxes.", style="green")
    else:
        note(f"INGEST IS DISABLED since {switch.get('disabled_at') or '?'} by "
             f"{switch.get('by') or '?'}" + (f": {switch['reason']}" if switch.get("reason")
                                             else ""), style="bold red")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """The ingest switch, each account's last run, messages waiting in error folders, the
    auto-mail queue and tickets by status, at a glance.

    \b
    Example:
      helpdesk-fetch status --json
    """
    from helpdesk_fetch.health import status as core

    config = app.config()
    app.database(read_only=True)
    app.say_if_no_accounts()
    data = core.status(config)
    if as_json:
        return echo_json(data)
    _print_status(data)


def _print_unreadable(problem: str) -> None:
    note(f"INGEST SWITCH UNREADABLE: {problem}. `fetch` reads no mailbox and exits 2 until this "
         "is fixed.", style="bold red")


def _print_status(data: dict) -> None:
    from helpdesk_fetch import state

    if data["ingest_switch_error"]:
        _print_unreadable(data["ingest_switch_error"])
    elif data["ingest_disabled"]:
        switch = data["ingest_switch"]
        note(f"INGEST IS DISABLED on this machine (since {switch.get('disabled_at') or '?'}, "
             f"by {switch.get('by') or '?'}"
             + (f": {switch['reason']}" if switch.get("reason") else "") + "); `fetch` reads "
             "no mailbox until `helpdesk-fetch ingest enable`.", style="bold red")
    else:
        note("Ingest: enabled", style="green")
    note(f"Database: {data['database']}")
    _print_accounts(data["accounts"])
    rule_counts([(a["name"], a["last_run"]) for a in data["accounts"]])
    _print_canaries(data["accounts"])
    _print_waiting(data["error_messages"], data["error_messages_by_place"])
    for failing in data["deliver_failing"]:
        note(f"{state.deliver_failing_text(failing, local)}; the MTA keeps the mail: "
             f"{failing.get('reason')}", style="bold red")
    if data["automail"]:
        queue = data["outbox"]
        failing = (f", {queue['failing']} of them not sent so far (the last error below)"
                   if queue["failing"] else "")
        refused = f"; {queue['refused']} refused for good" if queue["refused"] else ""
        note(f"Auto-mails waiting to be sent: {queue['pending']}{failing}{refused}",
             style="yellow" if queue["failing"] or queue["refused"] else "")
        if queue["failing"] and queue["last_error"]:
            note(f"  last error: {queue['last_error']}", style="yellow")
    else:
        note("Auto-mails: off (no [smtp] section)")
    hooks = data["hook_queue"]
    if data["hooks"] or hooks["pending"]:
        failing = f", {hooks['failing']} of them failed so far" if hooks["failing"] else ""
        given_up = (f"; {hooks['given_up']} given up after max_attempts (hooks retry --all "
                    f"runs them again)" if hooks["given_up"] else "")
        note(f"Hook events waiting: {hooks['pending']}{failing}{given_up}",
             style="yellow" if hooks["failing"] or hooks["given_up"] else "")
        if hooks["last_error"]:
            last = hooks["last_error"]
            note(f"  last hook failure: event {last['id']} ({last['event']}), attempt "
                 f"{last['attempts']}: {last['error']}", style="yellow")
    counts = ", ".join(f"{k}: {v}" for k, v in data["tickets_by_status"].items())
    note(f"Tickets: {counts}")
    _print_not_requests(data)


def _print_accounts(accounts: list[dict]) -> None:
    """Each account's last run: what it read adds up to new + replies + rejected + dupes +
    ignored + errors (rejected and ignored in columns only when a run had some: so the table
    fits 80 columns with longer account names); the failed messages waiting, when there are,
    with its problem below it. How long a run took: in --json ("seconds")."""
    runs = [a["last_run"] or {} for a in accounts]
    counts = ["fetched", "new_tickets", "threaded", "rejected", "duplicates", "ignored",
              "errors"]
    counts = [c for c in counts if c not in ("rejected", "ignored")
              or any(run.get(c) for run in runs)]
    rows, problems = [], []
    for a, run in zip(accounts, runs, strict=True):
        rows.append([a["name"] + ("" if a["enabled"] else " (disabled)"),
                     ago(run.get("finished_at") or run.get("started_at")) if run else "never",
                     run.get("outcome", ""), *(run.get(c, "") for c in counts)])
        waiting = a["error_messages"]
        problem = [problem_of(a["name"], run.get("error"))
                   or (a["last_failure"] or {}).get("reason"),
                   f"{waiting} failed message{'' if waiting == 1 else 's'} waiting"
                   if waiting else None]
        problems.append("; ".join(p for p in problem if p) or None)
    names = {"fetched": "read", "new_tickets": "new", "threaded": "replies",
             "duplicates": "dupes"}
    table(["account", "last run", "outcome", *(names.get(c, c) for c in counts)], rows,
          title="Accounts", notes=problems)


def _print_not_requests(data: dict) -> None:
    """Mail that opened no ticket, and addresses held from auto-mails (spec §9.2, §9.4)."""
    kept = f"kept {data['ignored_days']} days" if data["ignored_days"] else "kept"
    note(f"Ignored mail ({kept}): {data['ignored_messages']}"
         + ("; see `helpdesk-fetch ignored list`" if data["ignored_messages"] else ""))
    bouncing = data["bouncing_addresses"]
    if bouncing:
        shown = ", ".join(f"{b['address']} (until {b['held_until'][:10]})" for b in bouncing[:5])
        more = f" and {len(bouncing) - 5} more" if len(bouncing) > 5 else ""
        note(f"Bouncing addresses, sent no auto-mail: {len(bouncing)}: {shown}{more}",
             style="yellow")


def _print_canaries(accounts: list[dict]) -> None:
    lines = []
    for a in accounts:
        canary = a["canary"]
        if canary.get("error"):
            lines.append(f"  {a['name']}: could not be sent {ago(canary['sent_at'])}: "
                         f"{canary['error']}")
        elif canary["received_at"]:
            lines.append(f"  {a['name']}: arrived after {canary['travel_seconds']:.1f} s "
                         f"(sent {ago(canary['sent_at'])})")
        elif canary["sent_at"]:
            lines.append(f"  {a['name']}: sent {ago(canary['sent_at'])}, not arrived yet")
    if lines:
        note("Canaries (probe send), the latest of each account:\n" + "\n".join(lines))


def _print_waiting(total: int, by_place: dict) -> None:
    if not total:
        note("Failed messages waiting: none", style="green")
        return
    from helpdesk_fetch.store.failures import PLACES

    where = ", ".join(f"{n} on the {PLACES[p]}" if p == "pop3" else f"{n} in the {PLACES[p]}"
                      for p, n in by_place.items() if n)
    note(f"Failed messages waiting: {total} ({where}); see `helpdesk-fetch errors list`, "
         "fix the cause, then `helpdesk-fetch errors retry --all` (or `errors dismiss ID` "
         "for what no fix will make ingestible).", style="bold yellow")
