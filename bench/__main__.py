"""``python -m bench``: run benchmarks and print/save their figures (bench/results/)."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true")
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="what", required=False)
    ing = sub.add_parser(
        "ingest", parents=[common], help="ingestion rows/s vs pandas row-wise validation"
    )
    ing.add_argument("--persons", type=int, default=1_000_000)
    ing.add_argument(
        "--baseline-rows", type=int, default=200_000, help="rows per file for the (slow) baseline"
    )
    idb = sub.add_parser(
        "identity",
        parents=[common],
        help="identity + profile builds, clustering vs networkx/splink",
    )
    idb.add_argument("--persons", type=int, default=1_000_000)
    idb.add_argument("--no-baselines", action="store_true")
    seg = sub.add_parser(
        "segments", parents=[common], help="batch segment job, count, estimate vs pandas"
    )
    seg.add_argument("--persons", type=int, default=1_000_000)
    seg.add_argument("--reps", type=int, default=3)
    seg.add_argument("--no-baseline", action="store_true")
    act = sub.add_parser(
        "activation", parents=[common], help="export of a 1M audience, incremental export"
    )
    act.add_argument("--persons", type=int, default=1_000_000)
    act.add_argument("--reps", type=int, default=3)
    stm = sub.add_parser(
        "streaming", parents=[common], help="streaming service: latency at 500 events/s, max rate"
    )
    stm.add_argument("--persons", type=int, default=1_000_000)
    gen = sub.add_parser("generate", parents=[common], help="time the sample generator")
    gen.add_argument("--persons", type=int, default=1_000_000)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING)
    what = a.what or "ingest"
    if what == "identity":
        from bench.identity import run as run_id

        rep = run_id(a.persons, baselines=not a.no_baselines)
    elif what == "segments":
        from bench.segments import run as run_seg

        rep = run_seg(a.persons, reps=a.reps, baseline=not a.no_baseline)
    elif what == "activation":
        from bench.activation import run as run_act

        rep = run_act(a.persons, reps=a.reps)
    elif what == "streaming":
        from bench.streaming import run as run_stream

        rep = run_stream(a.persons)
    elif what == "generate":
        from bench.generate import run as run_gen

        rep = run_gen(a.persons)
    else:
        from bench.ingest import run

        rep = run(getattr(a, "persons", 1_000_000), getattr(a, "baseline_rows", 200_000))
    rep.print()
    print(f"saved {rep.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
