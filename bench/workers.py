"""Messages per second with 1, 2 and 4 fetch workers against one PostgreSQL on this machine.

    python bench/workers.py                       # 20 accounts x 50 messages, 1/2/4 workers
    python bench/workers.py --workers 1,2,4,8 --repeat 5 --json

Self-contained: it starts its own Dovecot and its own PostgreSQL cluster (tests/servers.py,
tests/pgserver.py; as root, `make test-deps` must have installed them) with PostgreSQL's
durable defaults (fsync and synchronous_commit on, as in production; the tests switch them
off). For each worker count and repetition: a fresh database, the same mail appended to every
account (not timed), then N `helpdesk-fetch fetch` processes started at once, as cron on N
machines would; timed from their start until every one has exited, and checked: every mailbox
empty, every message stored once. The median of the repetitions is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tomli_w  # noqa: E402

from tests.mails import message  # noqa: E402
from tests.pgserver import PASSWORD as DB_PASSWORD  # noqa: E402
from tests.pgserver import PostgresCluster  # noqa: E402
from tests.servers import Dovecot, dovecot_base  # noqa: E402

PASSWORD_ENV = "HELPDESK_BENCH_DB_PASSWORD"


def mail_for(user: str, count: int) -> list[bytes]:
    """Typical helpdesk mail: a few paragraphs, every fifth with a small attachment."""
    body = "Hello,\n\nthe printer on the third floor jams again.\n\nRegards\n" * 5
    return [message(f"{user}: request {i}", body=body,
                    attachments=[("log.txt", "text/plain", b"x" * 20000)] if i % 5 == 0 else ())
            for i in range(count)]


def one_run(dovecot: Dovecot, cluster: PostgresCluster, workdir: Path, *, run_id: str,
            accounts: int, messages: int, workers: int) -> tuple[float, float]:
    """Seconds N workers take to ingest accounts x messages into a fresh database, and the
    CPU seconds the workers themselves used (Dovecot and PostgreSQL use the rest)."""
    users = [f"bench-{run_id}-{n}" for n in range(accounts)]
    for user in users:
        client = dovecot.imap(user)
        client.multiappend("INBOX", mail_for(user, messages))
        client.logout()
    config = workdir / f"{run_id}.toml"
    config.write_text(tomli_w.dumps({
        "settings": {"database": cluster.create_database(f"bench_{run_id}"),
                     "database_password_env": PASSWORD_ENV, "state_dir": str(workdir)},
        "resources": [{"name": "it-support", "members": ["alice@example.com"]}],
        "accounts": [dovecot.account(user, user, resource="it-support") for user in users]}))
    config.chmod(0o600)
    env = {**os.environ, PASSWORD_ENV: DB_PASSWORD}
    command = [sys.executable, "-m", "helpdesk_fetch", "--config", str(config), "fetch"]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    processes = [subprocess.Popen(command, cwd=ROOT, env=env) for _ in range(workers)]
    codes = [process.wait() for process in processes]
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    if set(codes) - {0, 75}:
        raise SystemExit(f"a worker failed: exit codes {codes}")
    stored = cluster.admin("SELECT count(*) FROM message", dbname=f"bench_{run_id}")[0][0]
    left = sum(len(dovecot.messages(user)) for user in users)
    if stored != accounts * messages or left:
        raise SystemExit(f"{stored} messages stored, {left} left in the mailboxes")
    return seconds, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: the workers
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="per account")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    load = os.getloadavg()[0]  # other work on the machine skews the figures
    total = args.accounts * args.messages
    results = []
    with dovecot_base() as base:
        dovecot = Dovecot(base).start()
        cluster = PostgresCluster(settings={}).start()  # durable, as in production
        try:
            for workers in counts:
                runs = [one_run(dovecot, cluster, base, run_id=f"w{workers}r{r}",
                                accounts=args.accounts, messages=args.messages,
                                workers=workers) for r in range(args.repeat)]
                median = statistics.median(t for t, _ in runs)
                cpu = statistics.median(c for _, c in runs)
                results.append({"workers": workers, "messages": total, "seconds": median,
                                "messages_per_second": round(total / median, 1),
                                "worker_cpu_seconds": round(cpu, 2),
                                "runs": [round(t, 2) for t, _ in runs]})
                if not args.json:
                    print(f"{workers} worker(s): {total / median:7.1f} messages/s "
                          f"({total} messages in {median:.1f} s, median of {args.repeat}; "
                          f"the workers used {cpu:.1f} CPU seconds)", flush=True)
        finally:
            cluster.stop()
            dovecot.stop()
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "load_average_before": load,
               "accounts": args.accounts, "messages_per_account": args.messages,
               "results": results}
    print(json.dumps(summary, indent=2) if args.json
          else f"{summary['date']}, {summary['machine']}")


if __name__ == "__main__":
    main()
