"""Where a fetch run's CPU goes: ``fetch`` in-process under cProfile, and the parse worker's work.

    python -m bench.profile [--protocol imap|pop3] [--messages N] [--rules] [--top N]
                            [--clock cpu|wall] [--sort tottime|cumtime] [--save DIR]
                            [--skip-fetch] [--skip-parse]

Starts its own Dovecot (as ``make bench`` does), fills a fresh mailbox with the seeded message set
of bench/mailset.py and runs the real command (``fetch``) in this process, each thread under a
profiler of its own: the writer (the main thread: parse results collected, decided, stored), the
mailbox reader, the preparer (hash, compression, hand-off to the parse worker) and the parse
worker's feeder. The parse worker itself is another process; its work is profiled separately,
in this process, on the same messages, the way the worker does it (worker.py: the request read
off the wire, the message parsed, pickled), with the parent's side of its answer (unpickled,
attachments resolved) counted apart. The unprofiled run also says how long the writer waited,
and for what (``WriterWaits``).

Each thread's profile counts its own CPU time (``--clock cpu``, the default: a thread waiting for
a lock, the server or an fsync costs nothing) or wall time (``--clock wall``). Prints the top
functions of each by tottime (``--sort``), and the CPU seconds and wall time of the run without
the profiler (an unprofiled run first: cProfile slows call-heavy code several times).
``--save DIR`` writes each profile as a pstats file (``python -m pstats``, snakeviz).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pickle
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bigdb, mailset  # noqa: E402
from bench.run import Bench, twenty_rules  # noqa: E402
from tests.servers import Dovecot, dovecot_base  # noqa: E402

Clock = Literal["cpu", "wall"]


def profiler(clock: Clock) -> cProfile.Profile:
    """A profiler that counts the CPU time of the thread it runs in (a thread waiting on a
    lock, a socket or an fsync costs nothing), or wall time."""
    return cProfile.Profile(time.thread_time if clock == "cpu" else time.perf_counter)


class ThreadProfiles:
    """A profiler per thread started while it is on (grouped by the thread's name, its digits
    dropped), and one for the thread that turns it on."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.profiles: dict[str, cProfile.Profile] = {}
        self._lock = threading.Lock()
        self._run = threading.Thread.run

    def _profile(self, name: str) -> cProfile.Profile:
        group = name.rstrip("0123456789_-") or name
        with self._lock:
            if group not in self.profiles:
                self.profiles[group] = profiler(self.clock)
            return self.profiles[group]

    def __enter__(self) -> ThreadProfiles:
        profiles, original = self, self._run

        def run(thread: threading.Thread) -> None:
            profile = profiles._profile(thread.name)
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        threading.Thread.run = run  # type: ignore[method-assign]
        self._main = self._profile("writer (main thread)")
        self._main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self._main.disable()
        threading.Thread.run = self._run  # type: ignore[method-assign]


class ThreadCpu:
    """The CPU seconds of each thread started while it is on, and of the thread that turns it
    on, by group (as ThreadProfiles): cheap enough to leave the run's figures as they are."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._run = threading.Thread.run

    def _add(self, name: str, seconds: float) -> None:
        group = name.rstrip("0123456789_-") or name
        with self._lock:
            self.seconds[group] = self.seconds.get(group, 0.0) + seconds

    def __enter__(self) -> ThreadCpu:
        cpu, original = self, self._run

        def run(thread: threading.Thread) -> None:
            try:
                original(thread)
            finally:
                cpu._add(thread.name, time.thread_time())

        threading.Thread.run = run  # type: ignore[method-assign]
        self._started = time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._add("writer (main thread)", time.thread_time() - self._started)
        threading.Thread.run = self._run  # type: ignore[method-assign]


class WriterWaits:
    """The wall seconds the writer (the thread that turns it on) spends waiting, by what for:
    the parse worker's answers, the commits (their fsync), the mailbox reader, the preparer, the
    mailbox opened ahead (its login). Each blocking call the writer makes is timed where it is
    made, so the rest of its wall time is its own work (and waiting for the interpreter lock)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._patched: list[tuple[object, str, object]] = []

    def __enter__(self) -> WriterWaits:
        from helpdesk_fetch.message import budget
        from helpdesk_fetch.store import group

        self._writer = threading.current_thread()
        for owner, name, what in ((budget._Worker, "read", "parse worker"),
                                  (budget._Worker, "answering", "parse worker"),
                                  (group.CommitGroup, "commit", "commits"),
                                  (threading.Thread, "join", None),
                                  (threading.Condition, "wait", None)):
            self._patch(owner, name, what)
        return self

    def _patch(self, owner: object, name: str, what: str | None) -> None:
        original = getattr(owner, name)
        waits = self

        def timed(*args: object, **kwargs: object) -> object:
            if threading.current_thread() is not waits._writer:
                return original(*args, **kwargs)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                waits._add(what or _waited_for(sys._getframe(1)), time.perf_counter() - started)

        self._patched.append((owner, name, original))
        setattr(owner, name, timed)

    def _add(self, what: str, seconds: float) -> None:
        self.seconds[what] = self.seconds.get(what, 0.0) + seconds

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)


def _waited_for(frame: object) -> str:
    """Whom a Condition.wait or Thread.join of the writer waits for, by the module that waits
    (the reader's thread, the preparer's pool, the thread that opens the mailbox ahead)."""
    while frame is not None:
        filename = frame.f_code.co_filename  # type: ignore[attr-defined]
        if filename.endswith("prefetch.py"):
            return "mailbox reader"
        if "concurrent" in filename:
            return "preparer"
        if filename.endswith("ahead.py"):
            return "mailbox opened ahead (login)"
        frame = frame.f_back  # type: ignore[attr-defined]
    return "other"


def cpu_seconds() -> tuple[float, float]:
    """User + system seconds of this process and of its waited-for children."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class Fetch:
    """``helpdesk-fetch fetch`` of a fresh mailbox holding *messages*, in this process: the
    mailbox filled first (not measured), then ``run``."""

    def __init__(self, bench: Bench, protocol: str, messages: list[bytes],
                 rules: list[dict], *, big: bool = False) -> None:
        self.bench = bench
        self.user = bench.user(messages)
        self.config = bench.config(self.user, protocol, bench.database(big=big), rules=rules)

    def run(self) -> None:
        from click.testing import CliRunner

        from helpdesk_fetch.cli import cli

        result = CliRunner().invoke(cli, ["--config", str(self.config), "fetch"],
                                    catch_exceptions=False)
        left = len(self.bench.server.messages(self.user))
        if result.exit_code != 0 or left:
            raise SystemExit(f"profile: fetch exited {result.exit_code}, {left} messages left:"
                             f"\n{result.output[-2000:]}")


def profile_fetch(bench: Bench, protocol: str, messages: list[bytes], rules: list[dict],
                  clock: Clock, *, big: bool = False,
                  ) -> tuple[dict[str, cProfile.Profile], dict[str, float]]:
    """One unprofiled run (its CPU seconds and wall time), then a profiled one."""
    unprofiled = Fetch(bench, protocol, messages, rules, big=big)
    own, children = cpu_seconds()
    started = time.perf_counter()
    with ThreadCpu() as threads, WriterWaits() as waits:
        unprofiled.run()
    wall = time.perf_counter() - started
    own_after, children_after = cpu_seconds()
    figures = {"wall_s": wall, "cpu_s": own_after - own,
               "parse_worker_cpu_s": children_after - children,
               **{f"cpu_s {name}": seconds for name, seconds in threads.seconds.items()},
               **{f"wait_s {name}": seconds for name, seconds in waits.seconds.items()}}
    profiled = Fetch(bench, protocol, messages, rules, big=big)
    with ThreadProfiles(clock) as threads:
        profiled.run()
    return threads.profiles, figures


def profile_parse(messages: list[bytes], clock: Clock) -> tuple[cProfile.Profile, cProfile.Profile,
                                                  dict[str, float]]:
    """The parse worker's work on *messages* (worker.serve's loop body), and the parent's
    share of each answer (budget.Parser: the request built, the answer unpickled and resolved)."""
    from helpdesk_fetch.message import worker
    from helpdesk_fetch.message.budget import Request, _resolve

    wires, requests = [], []
    parent, child = profiler(clock), profiler(clock)
    for raw in messages:
        parent.enable()
        request = Request.of(raw)
        parent.disable()
        wires.append(b"".join(request.chunks()))
        requests.append(request)
    answers = []
    for data in wires:
        stream = io.BytesIO(data)
        child.enable()
        header = worker._read_header(stream)
        assert header is not None
        received = worker._Stream(stream, header)
        payload = pickle.dumps(received.parse(), protocol=pickle.HIGHEST_PROTOCOL)
        received.skip_rest()
        child.disable()
        answers.append(payload)
    parent.enable()
    for payload, request in zip(answers, requests, strict=True):
        _resolve(pickle.loads(payload), request.runs)
    parent.disable()
    sizes = [len(a) for a in answers]
    return child, parent, {"pickled_bytes_total": sum(sizes),
                           "pickled_bytes_mean": sum(sizes) / len(sizes)}


def show(title: str, profile: cProfile.Profile, *, top: int, sort: str,
         save: Path | None) -> None:
    stats = pstats.Stats(profile, stream=sys.stdout)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n=== {title}: {total:.2f} s in profiled functions ===")
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        name = "-".join("".join(c if c.isalnum() else " " for c in title).split())
        profile.dump_stats(save / f"{name}.pstats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("imap", "pop3"), default="imap")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rules", action="store_true", help="with make bench's 20 [[rules]]")
    parser.add_argument("--top", type=int, default=15, help="functions shown per profile")
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumtime"))
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="count each thread's CPU time (default) or wall time")
    parser.add_argument("--save", type=Path, help="write the pstats files into this directory")
    parser.add_argument("--skip-fetch", action="store_true", help="only the parse worker's work")
    parser.add_argument("--skip-parse", action="store_true", help="only the fetch")
    parser.add_argument("--big-db", action="store_true",
                        help="into a copy of make bench's database of a million messages")
    args = parser.parse_args()
    messages = mailset.generate(args.messages)
    rules = twenty_rules() if args.rules else []
    if not args.skip_fetch:
        with dovecot_base() as base:
            server = Dovecot(base).start()
            try:
                with tempfile.TemporaryDirectory(prefix="helpdesk-profile-") as work:
                    bench = Bench(server, Path(work), messages,
                                  big_db=bigdb.MESSAGES if args.big_db else 0)
                    # the imports and the page cache, not measured
                    Fetch(bench, args.protocol, messages[:20], rules).run()
                    profiles, figures = profile_fetch(bench, args.protocol, messages, rules,
                                                      args.clock, big=args.big_db)
            finally:
                server.stop()
        print(f"fetch of {len(messages)} messages over {args.protocol.upper()}S, unprofiled: "
              f"{figures['wall_s']:.2f} s wall, {figures['cpu_s']:.2f} s CPU in this process "
              f"(writer, reader, preparer), {figures['parse_worker_cpu_s']:.2f} s in the parse "
              "worker")
        for name, seconds in figures.items():
            if name.startswith("cpu_s "):
                print(f"  {name[6:]:24}{seconds:6.2f} s CPU")
        print("the writer waited for (wall):")
        for name, seconds in sorted(figures.items(), key=lambda item: -item[1]):
            if name.startswith("wait_s "):
                print(f"  {name[7:]:28}{seconds:6.2f} s")
        for name, profile in sorted(profiles.items()):
            show(f"fetch: {name}", profile, top=args.top, sort=args.sort, save=args.save)
    if not args.skip_parse:
        child, parent, sizes = profile_parse(messages, args.clock)
        print(f"\nparse worker's answers: {sizes['pickled_bytes_total'] / 1e6:.1f} MB pickled, "
              f"{sizes['pickled_bytes_mean'] / 1e3:.1f} KB per message")
        show("parse worker (its loop, in process)", child, top=args.top, sort=args.sort,
             save=args.save)
        show("parse worker, the parent's side", parent, top=args.top, sort=args.sort,
             save=args.save)


if __name__ == "__main__":
    main()
