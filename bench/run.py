"""``make bench``: how fast and lean ``helpdesk-fetch fetch`` is, next to the raw floor (issue 7).

Starts its own Dovecot (as the tests do), fills fresh mailboxes with the seeded message set of
bench/mailset.py, and runs the real command line as a subprocess. Ours and the floor are measured
back to back in each round, in alternating order, and compared by the median of the per-round
ratios, because the machine is shared. Prints a table and writes bench/results/<time>.json.

    python bench/run.py [--rounds N] [--noop N] [--messages N] [--big-db N] [--latest]
    python bench/run.py --only ingest [--rounds N] [--messages N]
    python bench/run.py --only noop [--noop N]    # the no-op cron runs alone, in a minute
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bigdb, mailset, shapes  # noqa: E402
from tests.proc import measured, usage  # noqa: E402
from tests.servers import Dovecot, dovecot_base  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LATEST = ROOT / "bench" / "latest.json"
MiB = 1024 * 1024
TARGETS = {"imap_ratio": 1.5, "pop3_ratio": 1.5, "noop_ratio": 1.3, "noop_ms": 150, "rss_mb": 60,
           "big_db_share": 0.90, "rules_share": 0.05}


@dataclass
class Proc:
    """One subprocess: wall time, peak memory, exit code and output."""

    seconds: float
    maxrss_mb: float  # with its children (the parse worker): tests/proc.py
    code: int
    out: str
    err: str
    cpu: float  # user + system seconds, children included
    own_rss_mb: float = 0.0  # its largest process alone


def measure(argv: list[str], *, env: dict[str, str] | None = None) -> Proc:
    """Run *argv* to completion: its wall time, its peak memory and its CPU time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as report:
        done = subprocess.run([*measured(Path(report.name)), *argv], stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
        cost = usage(Path(report.name))
        out.seek(0)
        err.seek(0)
        return Proc(cost.seconds, cost.max_rss_mb, done.returncode,
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                    cost.cpu, cost.own_rss_mb)


def cron_environment() -> dict[str, str]:
    """What cron hands a job: none of this shell's variables (SSL_CERT_FILE,
    PYTHONDONTWRITEBYTECODE, ...), which would change what is measured."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "SHELL": "/bin/sh",
            "HOME": os.environ.get("HOME", "/root"), "LOGNAME": os.environ.get("LOGNAME", "root")}


def cli_argv() -> list[str]:
    """The command cron would run: the console script beside this interpreter, else -m."""
    script = Path(sys.executable).with_name("helpdesk-fetch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "helpdesk_fetch"]


class Bench:
    """One Dovecot, one scratch directory, the message set; runs ours and the floor."""

    def __init__(self, server: Dovecot, work: Path, messages: list[bytes], *, big_db: int):
        self.server, self.work, self.messages, self.big_db = server, work, messages, big_db
        self.users = 0
        self.env = cron_environment()
        self.empty_db = work / "empty.db"
        _migrate(self.empty_db)

    def user(self, messages: list[bytes]) -> str:
        """A fresh mailbox holding *messages* (MULTIAPPEND, a few MB per command)."""
        self.users += 1
        user = f"bench{self.users}-{os.getpid()}"
        client = self.server.imap(user)
        try:
            chunk: list[bytes] = []
            for raw in messages:
                chunk.append(raw)
                if sum(map(len, chunk)) > 8 * MiB:
                    client.multiappend("INBOX", chunk)
                    chunk = []
            if chunk:
                client.multiappend("INBOX", chunk)
            client.select_folder("INBOX", readonly=True)  # let Dovecot index it now, not in a run
        finally:
            client.logout()
        return user

    def config(self, user: str, protocol: str, database: Path, *, rules: list[dict] = (),
               **settings) -> Path:
        import tomli_w

        directory = Path(tempfile.mkdtemp(dir=self.work))
        data = {"settings": {"database": f"sqlite:///{database}", "state_dir": str(directory),
                             **settings},
                "resources": [{"name": "it-support", "members": ["alice@example.com"]},
                              {"name": "sales", "members": ["sam@example.com"]}],
                "accounts": [self.server.account("bench", user, protocol=protocol,
                                                 resource="it-support")],
                "rules": list(rules)}
        path = directory / "accounts.toml"
        path.write_text(tomli_w.dumps(data))
        path.chmod(0o600)
        return path

    def database(self, *, big: bool) -> Path:
        path = Path(tempfile.mkdtemp(dir=self.work)) / "helpdesk.db"
        if big:
            bigdb.copy_to(path, self.big_db)
        else:
            shutil.copyfile(self.empty_db, path)
        return path

    def ours(self, protocol: str, *, big: bool = False, messages: list[bytes] | None = None,
             rules: list[dict] = (), **settings) -> Proc:
        """``helpdesk-fetch fetch`` of a fresh mailbox into a database (empty or big)."""
        messages = self.messages if messages is None else messages
        user = self.user(messages)
        database = self.database(big=big)
        before = _count(database)
        config = self.config(user, protocol, database, rules=rules, **settings)
        proc = measure([*cli_argv(), "--config", str(config), "fetch"], env=self.env)
        stored = _count(database) - before
        self._check(proc, user, stored, len(messages), f"ours {protocol}")
        _remove(database)
        return proc

    def floor(self, protocol: str, *, messages: list[bytes] | None = None) -> Proc:
        messages = self.messages if messages is None else messages
        user = self.user(messages)
        database = Path(tempfile.mkdtemp(dir=self.work)) / "floor.db"
        port = self.server.ports[f"{protocol}s"]
        proc = measure([sys.executable, "-m", "bench.floor", f"{protocol}s", "127.0.0.1",
                        str(port), user, _password(), str(self.server.cert), str(database)],
                       env=self.env)
        stored = int(proc.out.strip() or 0)
        self._check(proc, user, stored, len(messages), f"floor {protocol}")
        _remove(database)
        return proc

    def _check(self, proc: Proc, user: str, stored: int, expected: int, what: str) -> None:
        left = len(self.server.messages(user))
        if proc.code != 0 or proc.err.strip() or stored != expected or left:
            raise SystemExit(f"bench: {what}: exit {proc.code}, stored {stored} of {expected}, "
                             f"{left} left in the mailbox; stderr:\n{proc.err[-2000:]}")

    def noop(self, count: int) -> dict[str, list[float]]:
        """Wall times (ms) of cron runs that have nothing to do, interleaved with their floors:
        a mailbox without mail (floor: the floor script's session on an empty mailbox), and
        ingest disabled (floor: `python -c pass`)."""
        empty = self.config(self.user([]), "imap", self.database(big=False))
        disabled = self.config(self.user([]), "imap", self.database(big=False))
        switch = measure([*cli_argv(), "--config", str(disabled), "ingest", "disable"],
                         env=self.env)
        assert switch.code == 0, switch.err
        floor_db = Path(tempfile.mkdtemp(dir=self.work)) / "floor.db"
        runs = {"python -c pass": [sys.executable, "-c", "pass"],
                "no mail": [*cli_argv(), "--config", str(empty), "fetch"],
                "floor, no mail": [sys.executable, "-m", "bench.floor", "imaps", "127.0.0.1",
                                   str(self.server.ports["imaps"]), self.user([]), _password(),
                                   str(self.server.cert), str(floor_db)],
                "ingest disabled": [*cli_argv(), "--config", str(disabled), "fetch"]}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for index in range(count + 1):
            for name, argv in runs.items():
                proc = measure(argv, env=self.env)
                if proc.code != 0 or proc.err.strip():
                    raise SystemExit(f"bench: no-op run {name!r} failed: {proc.err[-2000:]}")
                if index:  # the first round warms the page cache and writes the .pyc files
                    times[name].append(proc.seconds * 1000)
        return times


def _password() -> str:
    from tests.servers import PASSWORD

    return PASSWORD


def _migrate(path: Path) -> None:
    from helpdesk_fetch.store import db

    db.open_database(f"sqlite:///{path}").close()


def _count(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT count(*) FROM message WHERE direction = 'in'").fetchone()[0]


def _remove(database: Path) -> None:
    shutil.rmtree(database.parent, ignore_errors=True)


def twenty_rules() -> list[dict]:
    """20 [[rules]] of the kinds an installation has: every condition type, each rule tried for
    nearly every message of the set (the worst case: only the last matches, 1 message in 97)."""
    rules = []
    for i in range(19):
        rule: dict = {"name": f"rule{i}", "resource": "sales"}
        kind = i % 5
        if kind == 0:
            rule["to"] = [f"team{i}@example.com", f"*+team{i}@example.com", f"desk{i}+*@"]
        elif kind == 1:
            rule["from"] = [f"*@partner{i}.example", f"robot{i}@*"]
        elif kind == 2:
            rule["subject"] = rf"\b(invoice|quote|order)\s*#?{i}\d+"
        elif kind == 3:
            rule["headers"] = {"X-Spam-Flag": "^yes$", "X-Customer": f"^tier{i}$"}
        else:
            rule.update(subject=rf"(?P<state>PROBLEM|RECOVERY) Host Alert: (?P<host>\S+){i}",
                        correlate=["host"], resolve={"state": "RECOVERY"})
        rules.append(rule)
    rules.append({"name": "vip", "from": ["user7@example.org"], "resource": "sales"})
    return rules


def rule_cost(messages: list[bytes], rules: list[dict]) -> float:
    """Seconds per message that matching *rules* costs, in process (parsing not counted): the
    median of five passes over the message set."""
    from helpdesk_fetch.config import parse as parse_config
    from helpdesk_fetch.message.parse import parse
    from helpdesk_fetch.tickets.routing import Rules

    config = parse_config({"resources": [{"name": "sales"}], "rules": rules}, ROOT / "x.toml")
    compiled = Rules(config.rules)
    parsed = [parse(raw) for raw in messages]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for message in parsed:
            compiled.first("bench", message)
        times.append((time.perf_counter() - started) / len(parsed))
    return statistics.median(times)


INGEST = ("imap", "imap_floor", "pop3", "pop3_floor")


def rounds(bench: Bench, count: int, log, *, only_ingest: bool = False) -> dict[str, list[Proc]]:
    """Pairs measured back to back, the order alternating: ours/floor per protocol, ours
    into an empty and into the big database, and ours without and with 20 rules (with
    *only_ingest*, the first two pairs only)."""
    names = INGEST if only_ingest else (*INGEST, "empty_db", "big_db", "no_rules", "rules_20")
    samples: dict[str, list[Proc]] = {k: [] for k in names}
    warm = bench.messages[:20]  # page cache, Dovecot's processes, nothing measured
    for protocol in ("imap", "pop3"):
        bench.ours(protocol, messages=warm)
        bench.floor(protocol, messages=warm)
    for index in range(count):
        pairs = [("imap", lambda: bench.ours("imap"), "imap_floor", lambda: bench.floor("imap")),
                 ("pop3", lambda: bench.ours("pop3"), "pop3_floor", lambda: bench.floor("pop3")),
                 ("empty_db", lambda: bench.ours("imap"),
                  "big_db", lambda: bench.ours("imap", big=True)),
                 ("no_rules", lambda: bench.ours("imap"),
                  "rules_20", lambda: bench.ours("imap", rules=twenty_rules()))]
        if only_ingest:
            pairs = pairs[:2]
        for first, run_first, second, run_second in pairs:
            if index % 2:
                second, run_second, first, run_first = first, run_first, second, run_second
            samples[first].append(run_first())
            samples[second].append(run_second())
            log(f"round {index + 1}: {first} {samples[first][-1].seconds:.2f} s, "
                f"{second} {samples[second][-1].seconds:.2f} s")
    return samples


def _wall(samples: dict[str, list[Proc]], name: str) -> float:
    return statistics.median(p.seconds for p in samples[name])


def _ratio(samples: dict[str, list[Proc]], a: str, b: str) -> float:
    return statistics.median(x.seconds / y.seconds for x, y in zip(samples[a], samples[b],
                                                                  strict=True))


def summarize_ingest(samples: dict[str, list[Proc]], messages: int) -> dict:
    """The figures of each kind of run sampled, and ours/floor per protocol."""
    result: dict = {"messages": messages}
    for name in samples:
        wall = _wall(samples, name)
        result[name] = {"wall_s": round(wall, 3),
                        "msg_per_s": round(messages / wall, 1),
                        "samples_s": [round(p.seconds, 3) for p in samples[name]],
                        "cpu_s": round(statistics.median(p.cpu for p in samples[name]), 3),
                        "max_rss_mb": round(max(p.maxrss_mb for p in samples[name]), 1),
                        "own_rss_mb": round(max(p.own_rss_mb for p in samples[name]), 1)}
    result["imap_ratio"] = round(_ratio(samples, "imap", "imap_floor"), 2)
    result["pop3_ratio"] = round(_ratio(samples, "pop3", "pop3_floor"), 2)
    return result


def summarize(samples: dict[str, list[Proc]], noop: dict[str, list[float]], big: Proc,
              big_size: int, messages: int, rules_seconds: float) -> dict:
    def wall(name: str) -> float:
        return _wall(samples, name)

    def ratio(a: str, b: str) -> float:
        return _ratio(samples, a, b)

    result = summarize_ingest(samples, messages)
    result["big_db_share"] = round(ratio("empty_db", "big_db"), 3)  # throughput big / empty
    per_message = wall("no_rules") / messages
    result["rules"] = {"count": 20, "us_per_message": round(rules_seconds * 1e6, 1),
                       "share": round(rules_seconds / per_message, 4),  # of a message's ingest
                       "wall_ratio": round(ratio("rules_20", "no_rules"), 3)}
    result["noop_ms"] = summarize_noop(noop)
    result["big_message"] = {"bytes": big_size, "wall_s": round(big.seconds, 2),
                             "max_rss_mb": round(big.maxrss_mb, 1),
                             "own_rss_mb": round(big.own_rss_mb, 1),
                             "target_mb": round(2.5 * big_size / MiB + 50, 1)}
    return result


def summarize_noop(noop: dict[str, list[float]]) -> dict:
    return {name: {"median": round(statistics.median(t), 1), "min": round(min(t), 1),
                   "samples": [round(x, 1) for x in t]} for name, t in noop.items()}


def machine() -> dict:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "commit": commit,
            "cpus": os.cpu_count(), "cpu": cpu, "load_before": os.getloadavg(),
            "python": platform.python_version(), "executable": sys.executable,
            "sqlite": sqlite3.sqlite_version, "command": " ".join(cli_argv())}


def noop_lines(noop_ms: dict) -> list[str]:
    """The two no-op rows of the table: no mail, and ingest disabled, beside their floors."""
    t = TARGETS
    noop = {name: value["median"] for name, value in noop_ms.items()}
    return [
        f"{'no-op run, no mail, ms':36}{noop['no mail']:>9.0f}{noop['floor, no mail']:>9.0f}"
        f"{noop['no mail'] / noop['floor, no mail']:>11.2f}x   <= {t['noop_ratio']}x "
        "(the floor's empty session)",
        f"{'no-op run, ingest disabled, ms':36}{noop['ingest disabled']:>9.0f}"
        f"{noop['python -c pass']:>9.0f}{'':12}   <= {t['noop_ms']} ms (floor: python -c pass)"]



def ingest_lines(r: dict) -> list[str]:
    """The table's heading and its IMAPS and POP3S rows."""
    t = TARGETS
    m = r["machine"]
    lines = [
        f"helpdesk-fetch bench, {m['date']}, commit {m['commit']}, {m['cpus']} cpus, load "
        f"{m['load_before'][0]:.2f} -> {m['load_after'][0]:.2f}, python {m['python']}, "
        f"sqlite {m['sqlite']}",
        f"{'':36}{'ours':>9}{'floor':>9}{'ours/floor':>12}   target",
    ]
    for proto, name in (("imap", "IMAPS"), ("pop3", "POP3S")):
        ours, floor = r[proto], r[f"{proto}_floor"]
        lines += [
            f"{name + ' ingest, msg/s':36}{ours['msg_per_s']:>9.0f}{floor['msg_per_s']:>9.0f}"
            f"{r[proto + '_ratio']:>11.2f}x   wall <= {t[proto + '_ratio']}x",
            f"{'  CPU seconds (user+sys)':36}{ours['cpu_s']:>9.2f}{floor['cpu_s']:>9.2f}"
            f"{ours['cpu_s'] / floor['cpu_s']:>11.2f}x",
            f"{'  peak memory, MB':36}{ours['max_rss_mb']:>9.0f}{floor['max_rss_mb']:>9.0f}"
            f"{'':12}   <= {t['rss_mb']} MB",
            f"{'    of which the largest process':36}{ours['own_rss_mb']:>9.0f}"]
    return lines


NOISY_SPREAD = 1.25  # slowest / fastest run of an unchanged floor beyond which a warning shows


def noise_lines(r: dict) -> list[str]:
    """A warning for each floor whose runs spread more than NOISY_SPREAD (slowest to fastest;
    of the no-op runs, the middle half): the floor does the same work each time, so a spread is
    other work on the machine, and the ratios of such a run are worth less than a quieter
    run's."""
    floors = {f"{name} floor": r[key]["samples_s"] for key, name in
              (("imap_floor", "IMAPS"), ("pop3_floor", "POP3S")) if key in r}
    if "noop_ms" in r:
        floors["no-mail floor"] = r["noop_ms"]["floor, no mail"]["samples"]
    lines = []
    for name, samples in floors.items():
        low, high = min(samples), max(samples)
        if len(samples) >= 8:  # the no-op runs: their middle half (one slow run is no noise)
            low, _, high = statistics.quantiles(samples, n=4)
        if low > 0 and high / low > NOISY_SPREAD:
            lines += [f"note: the {name}'s runs spread {high / low:.2f}x "
                      f"({low:.3g} to {high:.3g}):",
                      "  the machine was busy; compare the ratios with a quieter run's"]
    return lines


def table(r: dict) -> str:
    lines = ingest_lines(r)
    if r.get("only") == "ingest":
        return "\n".join([*lines, *noise_lines(r)])
    t = TARGETS
    big = r["big_message"]
    big_label = f"one {big['bytes'] / MiB:.1f} MiB message, peak memory, MB"
    big_db_label = f"  ... into {r['big_db_messages']:,} stored"
    lines += [
        *noop_lines(r["noop_ms"]),
        f"{big_label:36}"
        f"{big['max_rss_mb']:>9.0f}{'':21}   <= {big['target_mb']:.0f} MB (2.5 x size + 50)",
        f"{'  of which the largest process':36}{big['own_rss_mb']:>9.0f}",
        f"{'IMAPS msg/s into an empty db':36}{r['empty_db']['msg_per_s']:>9.0f}",
        f"{big_db_label:36}{r['big_db']['msg_per_s']:>9.0f}"
        f"{'':9}{r['big_db_share']:>11.2f}x   >= {t['big_db_share']}x of empty",
        f"{'20 rules, us per message':36}{r['rules']['us_per_message']:>9.0f}"
        f"{'':9}{r['rules']['share']:>11.1%}   <= {t['rules_share']:.0%} of a message's ingest",
        f"{'  IMAPS msg/s without / with them':36}{r['no_rules']['msg_per_s']:>9.0f}"
        f"{r['rules_20']['msg_per_s']:>9.0f}{r['rules']['wall_ratio']:>11.2f}x",
        *shapes.lines(r["parse_ms_per_kb"]),
        *noise_lines(r),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="back-to-back pairs (default 3)")
    parser.add_argument("--noop", type=int, default=10, help="no-op runs of each kind")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--big-db", type=int, default=bigdb.MESSAGES, help="stored messages")
    parser.add_argument("--big-message", type=int, default=25_000_000,
                        help="attachment bytes of the one big message")
    parser.add_argument("--latest", action="store_true",
                        help="also write bench/latest.json (the figures README.md quotes)")
    parser.add_argument("--only", choices=("ingest", "noop"),
                        help="only this part: ingest (the IMAPS and POP3S pairs, ours and the "
                             "floor) or noop (the no-op cron runs); not with --latest")
    args = parser.parse_args()
    if args.only and args.latest:
        parser.error("--latest writes the figures of a whole run, not of --only")
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    info = machine()
    # What `pip install` does: an installed tool starts from its .pyc files.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "helpdesk_fetch", "bench"],
                   cwd=ROOT, check=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""))
    if args.only == "noop":
        return only_noop(args.noop, info, log)
    messages = mailset.generate(args.messages)
    log(f"{len(messages)} messages, {sum(map(len, messages)) / MiB:.1f} MiB")
    if args.only == "ingest":
        samples = _ingest_only(messages, args.rounds, log)
        info["load_after"] = os.getloadavg()
        result = summarize_ingest(samples, args.messages)
        result.update(only="ingest", machine=info, targets=TARGETS,
                      bench_seconds=round(time.perf_counter() - started, 1))
        _write(result, log, latest=False)
        return
    _, built = bigdb.cached(args.big_db)
    log(f"database with {args.big_db:,} messages " + (f"built in {built:.0f} s" if built
                                                      else "from the cache"))
    with dovecot_base() as base:
        server = Dovecot(base).start()
        try:
            with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as work:
                bench = Bench(server, Path(work), messages, big_db=args.big_db)
                samples = rounds(bench, args.rounds, log)
                noop = bench.noop(args.noop)
                log("no-op runs done")
                big_raw = mailset.big(args.big_message)
                big = bench.ours("imap", messages=[big_raw], max_message_bytes=4 * len(big_raw))
                log(f"one {len(big_raw) / MiB:.0f} MiB message: {big.seconds:.2f} s")
        finally:
            server.stop()
    parse_times = shapes.parse_times()
    log("adversarial shapes parsed")
    rules_seconds = rule_cost(messages, twenty_rules())
    log(f"20 rules: {rules_seconds * 1e6:.0f} us per message in process")
    result = summarize(samples, noop, big, len(big_raw), args.messages, rules_seconds)
    result["parse_ms_per_kb"] = parse_times
    info["load_after"] = os.getloadavg()
    result.update(machine=info, big_db_messages=args.big_db, targets=TARGETS,
                  bench_seconds=round(time.perf_counter() - started, 1))
    _write(result, log, latest=args.latest)


def _ingest_only(messages: list[bytes], count: int, log) -> dict[str, list[Proc]]:
    """``--only ingest``: the IMAPS and POP3S pairs of ``rounds``, nothing else."""
    with dovecot_base() as base:
        server = Dovecot(base).start()
        try:
            with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as work:
                bench = Bench(server, Path(work), messages, big_db=0)
                return rounds(bench, count, log, only_ingest=True)
        finally:
            server.stop()


def _write(result: dict, log, *, latest: bool) -> None:
    """Print the table; write the figures to bench/results/ (and bench/latest.json)."""
    print(table(result))
    text = save(result, result["machine"], log)
    if latest:
        LATEST.write_text(text)
        log("and bench/latest.json")


def only_noop(count: int, info: dict, log) -> None:
    """``--only noop``: the no-op cron runs and their floors, nothing else (about a minute)."""
    with dovecot_base() as base:
        server = Dovecot(base).start()
        try:
            with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as work:
                noop = Bench(server, Path(work), [], big_db=0).noop(count)
        finally:
            server.stop()
    info["load_after"] = os.getloadavg()
    result = {"noop_ms": summarize_noop(noop), "machine": info, "only": "noop"}
    print(f"helpdesk-fetch bench --only noop, {info['date']}, commit {info['commit']}, load "
          f"{info['load_before'][0]:.2f} -> {info['load_after'][0]:.2f}")
    print(f"{'':36}{'ours':>9}{'floor':>9}{'ours/floor':>12}   target")
    print("\n".join([*noop_lines(result["noop_ms"]), *noise_lines(result)]))
    save(result, info, log, suffix="-noop")


def save(result: dict, info: dict, log, *, suffix: str = "") -> str:
    """Write *result* to bench/results/<time><suffix>.json; its text."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{info['date'].replace(':', '')}{suffix}.json"
    text = json.dumps(result, indent=1) + "\n"
    path.write_text(text)
    log(f"wrote {path.relative_to(ROOT)}")
    return text


if __name__ == "__main__":
    main()
