"""Parse time per KB of the adversarial shapes (issue 20.1, tests/hostile_shapes.py), each at
100 KB and 1 MB, parsed as ``fetch`` parses them: in the parse worker, under the default
parse_seconds. Linear parsing shows as about the same time per KB at both sizes; a shape that is
stopped by the budget shows as ``budget``.

    python -m bench.shapes
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk_fetch.config import Settings  # noqa: E402
from helpdesk_fetch.message.budget import Parser, ParseTimeout  # noqa: E402
from tests import hostile_shapes  # noqa: E402

REPEAT = 3  # the median of three parses


def parse_times(sizes=hostile_shapes.SIZES) -> dict[str, dict[str, float | None]]:
    """shape -> {size in KB (as a string): milliseconds per KB, or None when over the budget}."""
    result: dict[str, dict[str, float | None]] = {}
    with Parser(Settings().parse_seconds) as parser:
        parser.parse(hostile_shapes.many_parts(1000))  # the worker started and warm
        for name, size, raw in hostile_shapes.generate(sizes):
            result.setdefault(name, {})[str(size // 1000)] = _ms_per_kb(parser, raw)
    return result


def _ms_per_kb(parser: Parser, raw: bytes) -> float | None:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        try:
            parser.parse(raw)
        except ParseTimeout:
            return None
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000 / (len(raw) / 1024), 3)


def worst(times: dict[str, dict[str, float | None]], count: int = 5) -> list[tuple[str, dict]]:
    """The *count* shapes slowest per KB at the largest size (over the budget first)."""
    largest = max(next(iter(times.values())), key=int)
    return sorted(times.items(), key=lambda item: -(item[1][largest] or float("inf")))[:count]


def lines(times: dict[str, dict[str, float | None]]) -> list[str]:
    sizes = sorted(next(iter(times.values())), key=int)
    head = "".join(f"{size + ' KB':>10}" for size in sizes)
    out = [f"{'parse, ms per KB (worst shapes)':36}{head}"]
    for name, by_size in worst(times):
        cells = "".join(f"{'budget' if by_size[s] is None else f'{by_size[s]:.3f}':>10}"
                        for s in sizes)
        out.append(f"{'  ' + name:36}{cells}")
    return out


if __name__ == "__main__":
    measured = parse_times()
    print("\n".join(lines({name: measured[name] for name in measured})))
    for name, by_size in measured.items():
        print(f"  {name:34}" + "".join(f"{str(v):>10}" for v in by_size.values()))
