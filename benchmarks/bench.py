"""Benchmarks, measured against standard tools in the same run (not a test).

    python benchmarks/bench.py            # everything
    python benchmarks/bench.py help       # start-up: `basecone-migrate --help` vs a bare Typer app

Each figure is the median of several runs; ratios compare against the reference
measured moments before on the same machine, so a busy machine skews both sides.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BARE_TYPER = '''
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
@app.command()
def bye() -> None:
    """Say bye."""
if __name__ == "__main__":
    app()
'''


def timed(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run_quietly(args: list[str], **kwargs: object) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def bench_help(repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE_TYPER)
        ours = [sys.executable, "-m", "basecone_migrate", "--help"]
        reference = [sys.executable, str(bare), "--help"]
        run_quietly(ours)  # warm the bytecode caches of both before timing
        run_quietly(reference)
        bare_s = timed(lambda: run_quietly(reference), repeat)
        ours_s = timed(lambda: run_quietly(ours), repeat)
    ratio = ours_s / bare_s
    print("start-up (`--help`), median of", repeat)
    print(f"  bare Typer app          {bare_s * 1000:7.1f} ms")
    print(f"  basecone-migrate        {ours_s * 1000:7.1f} ms   ratio {ratio:.2f}x (target <= 1.20x)")
    return {"help_bare_s": bare_s, "help_ours_s": ours_s, "help_ratio": ratio}


BENCHES: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "help": lambda args: bench_help(args.repeat),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", choices=[*BENCHES, []], help="benchmarks to run (default: all)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per measurement")
    args = parser.parse_args()
    for name in args.which or BENCHES:
        BENCHES[name](args)
        print()


if __name__ == "__main__":
    main()
