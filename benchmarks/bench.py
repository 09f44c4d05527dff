"""Benchmarks, measured against standard tools in the same run (not a test).

    python benchmarks/bench.py            # everything
    python benchmarks/bench.py help       # start-up: `basecone-migrate --help` vs a bare Typer app
    python benchmarks/bench.py transfer   # archive moves vs `cp -r` and `rsync -a`
    python benchmarks/bench.py transfer --documents 1000   # a quicker, smaller run

The transfer benchmark generates documents of 50-500 KB (random bytes) on the disk that
holds --work (default: a temporary folder), loads them as one administration, then:

1. moves it to an environment on the same filesystem (rename) and back, three times:
   documents per second, the median move;
2. in alternating rounds, copies those files to /dev/shm with `cp -r`, with `rsync -a`,
   and with the engine's own copy phase (the same code and thread pool, hashing and
   verifying every document); the medians are compared;
3. in alternating rounds again, `cp -r` of the folder to /dev/shm, then the whole move of
   the administration to an environment on /dev/shm through `redeem` (its process from
   start to exit: start-up, checks, copy with every byte verified, switch, removing the
   source), then the move back; and once `mv` across filesystems.

Each move runs as `basecone-migrate redeem` in its own process; its peak memory is that
process's maximum resident set size. The engine's own times are what `status` reports
per phase, without start-up.

Each figure is the median of several runs; ratios compare against the reference
measured moments before on the same machine, so a busy machine skews both sides. A
"speed" is the reference's time over ours: above 1.00x we are faster. The last line is
every figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    """Runs alternate between the two programs, so a machine that slows down or speeds up
    during the measurement weighs on both alike."""
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE_TYPER)
        ours = [sys.executable, "-m", "basecone_migrate", "--help"]
        reference = [sys.executable, str(bare), "--help"]
        run_quietly(ours)  # warm the bytecode caches of both before timing
        run_quietly(reference)
        bare_samples, our_samples = [], []
        for _ in range(repeat):
            bare_samples.append(timed(lambda: run_quietly(reference), 1))
            our_samples.append(timed(lambda: run_quietly(ours), 1))
    bare_s, ours_s = statistics.median(bare_samples), statistics.median(our_samples)
    ratio = ours_s / bare_s
    print(f"start-up (`--help`), median of {repeat}, runs interleaved")
    print(f"  bare Typer app          {bare_s * 1000:7.1f} ms")
    print(f"  basecone-migrate        {ours_s * 1000:7.1f} ms   ratio {ratio:.2f}x (target <= 1.20x)")
    return {"help_bare_s": bare_s, "help_ours_s": ours_s, "help_ratio": ratio}


def _world(folder: Path, documents: int, shm_root: Path,
           sizes: tuple[int, int] = (50_000, 500_000)) -> Path:
    """One administration of ``documents`` random files of ``sizes`` bytes, in DISK1; DISK2
    shares its filesystem, SHM lives on /dev/shm (benchmarks/memory.py reuses this)."""
    import random

    rng = random.Random(5000)
    docs = folder / "docs"
    docs.mkdir(parents=True)
    paths = []
    for n in range(documents):
        path = docs / f"invoice-{n:05d}.pdf"
        path.write_bytes(os.urandom(rng.randint(*sizes)))
        paths.append(f"docs/{path.name}")

    def office(code: str, user: str, storage: str | None) -> dict[str, object]:
        env: dict[str, object] = {
            "code": code, "name": code, "plan": "premium",
            "users": [{"email": user, "role": "superuser"}],
            "accounting_systems": [{"id": f"{code.lower()}-tw", "package": "twinfield",
                                    "catalogue": [{"code": "1001", "name": "Bench BV"}]}],
        }
        if storage:
            env["storage"] = storage
        return env

    world = {"environments": [office("DISK1", "a@bench.example", None),
                              office("DISK2", "b@bench.example", None),
                              office("SHM", "c@bench.example", str(shm_root))]}
    world["environments"][0]["administrations"] = [  # type: ignore[index]
        {"code": "1001", "name": "Bench BV", "accounting_system": "disk1-tw", "documents": paths}]
    path = folder / "world.json"
    path.write_text(json.dumps(world))
    return path


def tool_env(*drop: str) -> dict[str, str]:
    """The environment to run a tool in: the caller's, as a user's shell has it. Without the
    settings that would point the tool elsewhere (names starting with ``BASECONE_MIGRATE_``, or
    with ``drop``), and without ``PYTHONDONTWRITEBYTECODE``: an installed program has its
    modules compiled, but with that variable set (this machine sets it) every run of an
    editable install compiles the tool's own modules again, about 0.3 s of start-up that no
    user pays."""
    prefixes = ("BASECONE_MIGRATE_", *drop)
    return {k: v for k, v in os.environ.items()
            if not k.startswith(prefixes) and k != "PYTHONDONTWRITEBYTECODE"}


def measured(args: list[str], env: dict[str, str]) -> tuple[str, float, int, float]:
    """Run a program in its own process: (stdout, wall seconds, its peak resident memory in
    KB, the CPU seconds it used, user and system, all its threads). A failure ends the run."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({process.returncode}): {err.read().decode()[-3000:]}")
        return out.read().decode(), wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def _cli(env: dict[str, str], *args: str) -> tuple[str, float, int]:
    """Run the CLI in its own process: (stdout, wall seconds, that process's peak RSS in KB)."""
    out, wall, peak, _ = measured([sys.executable, "-m", "basecone_migrate", *args], env)
    return out, wall, peak


def _move(env: dict[str, str], sender: str, receiver: str) -> dict[str, float]:
    """Offer and redeem 1001 in their own processes; the engine's phase times and the peak RSS."""

    offer, _, _ = _cli(env, "--as", sender, "offer", "1001", "--to", receiver, "--accept-terms", "--json")
    code = json.loads(offer)["transfercode"]
    os.sync()  # nothing left for the kernel to write back while we measure
    out, wall, peak = _cli(env, "--as", receiver, "redeem", code, "--accept-terms", "--json")
    status, _, _ = _cli(env, "status", str(json.loads(out)["migration_id"]), "--json")
    [item] = json.loads(status)["items"]
    assert item["status"] == "completed", item
    timings = item["timings"]
    return {"copy": timings["copy"], "switch": timings["switch"], "clean_up": timings["clean_up"],
            "total": sum(timings.values()), "wall": wall, "peak_mb": peak / 1024, "mode": item["mode"]}


def _fresh(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    os.sync()


def _copy_phase(source_root: Path, target_root: Path) -> None:
    """The engine's copy phase for a streamed move, without the database: the same
    function the transfer runs (thread pool, one buffer per thread, every document hashed
    and verified against its SHA-256 before it is renamed into place)."""
    from basecone_migrate.services.transfer import Doc, stream_all
    from basecone_migrate.storage import Archive

    source, target = Archive(str(source_root)), Archive(str(target_root))
    docs = [Doc(n, key, 0, key.split("/", 1)[1]) for n, key in enumerate(source.keys(1))]
    problems = [problem for _, problem in stream_all(source, target, docs) if problem]
    assert not problems, problems[:3]


def _interleaved(source_root: Path, shm: Path, repeat: int) -> dict[str, float]:
    """cp -r, rsync -a and our copy phase in alternating rounds, on the same files: a
    machine that slows down or speeds up during the run weighs on all three alike."""
    source = source_root / "1"
    runs: dict[str, Callable[[], None]] = {
        "cp": lambda: run_quietly(["cp", "-r", str(source), str(shm / "ref" / "1")]),
        "rsync": lambda: run_quietly(["rsync", "-a", f"{source}/", f"{shm / 'ref' / '1'}/"]),
        "ours": lambda: _copy_phase(source_root, shm / "ref"),
    }
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            _fresh(shm / "ref")
            (shm / "ref").mkdir()
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    _fresh(shm / "ref")
    return {name: statistics.median(values) for name, values in samples.items()}


def _mv_reference(source: Path, scratch: Path, shm: Path) -> float:
    """`mv` across filesystems (a copy, then removing the source): the standard tool's move."""
    shutil.copytree(source, scratch)
    os.sync()
    start = time.perf_counter()
    run_quietly(["mv", str(scratch), str(shm / "mv-target")])
    seconds = time.perf_counter() - start
    shutil.rmtree(shm / "mv-target")
    return seconds


def _cross_rounds(env: dict[str, str], source: Path, shm: Path, repeat: int) -> dict[str, Any]:
    """The whole move across filesystems through `redeem` (its process, start to exit),
    against `cp -r` of the same folder, in alternating rounds; each round then moves the
    administration back (/dev/shm to disk, also through `redeem`) for the next one."""
    samples: dict[str, list[float]] = {"cp": [], "cp_cpu": [], "rm_cpu": [], "move": [], "back": []}
    moves = []
    for _ in range(repeat):
        _fresh(shm / "ref")
        (shm / "ref").mkdir()
        start = time.perf_counter()
        samples["cp_cpu"].append(_cpu_of(["cp", "-r", str(source), str(shm / "ref" / "1")]))
        samples["cp"].append(time.perf_counter() - start)
        _fresh(shm / "ref")
        scratch = source.parent / "rm-scratch"  # what removing the source costs, on its disk
        shutil.copytree(source, scratch)
        os.sync()
        samples["rm_cpu"].append(_cpu_of(["rm", "-rf", str(scratch)]))
        there = _move(env, "b@bench.example", "c@bench.example")
        samples["move"].append(there["wall"])
        moves.append(there)
        samples["back"].append(_move(env, "c@bench.example", "b@bench.example")["wall"])
    middle = sorted(moves, key=lambda m: m["wall"])[len(moves) // 2]
    return {**{name: statistics.median(values) for name, values in samples.items()}, "engine": middle}


def _cpu_of(args: list[str]) -> float:
    """Run a command; the CPU seconds (user and system) it used."""
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed")
    return usage.ru_utime + usage.ru_stime


def _sha256_rate() -> float:
    """Bytes per second that SHA-256 digests on one core here (the best of three passes
    over 64 MB already in memory): what verifying every byte costs at the least."""
    import hashlib

    data = os.urandom(64 * 1024 * 1024)
    best = min(timed(lambda: hashlib.sha256(data).digest(), 1) for _ in range(3))
    return len(data) / best


def _bare_start(repeat: int = 5) -> float:
    """`python -c "import sqlalchemy"`: a process that has only started."""
    return statistics.median(timed(lambda: run_quietly([sys.executable, "-c", "import sqlalchemy"]), 1)
                             for _ in range(repeat))


def bench_transfer(documents: int, work: Path | None, repeat: int) -> dict[str, float]:
    if not Path("/dev/shm").is_dir():
        raise SystemExit("the transfer benchmark needs /dev/shm as a second filesystem")
    base = Path(tempfile.mkdtemp(prefix="bcm-bench-", dir=work))
    shm = Path(tempfile.mkdtemp(prefix="bcm-bench-", dir="/dev/shm"))
    try:
        env = tool_env()
        env.update({"BASECONE_MIGRATE_DB": f"sqlite:///{base / 'bench.db'}",
                    "BASECONE_MIGRATE_STORAGE": str(base / "archive"),
                    "XDG_DATA_HOME": str(base / "xdg")})
        print(f"transfer: {documents} generated documents of 50-500 KB, disk folder {base}")
        world = _world(base / "world", documents, shm / "archive")
        _cli(env, "load", str(world))
        shutil.rmtree(base / "world")
        size = sum(p.stat().st_size for p in (base / "archive" / "DISK1" / "1").iterdir())

        # Three moves on one filesystem, there and back (a single move is one sample).
        renames = [_move(env, *pair) for pair in (("a@bench.example", "b@bench.example"),
                                                  ("b@bench.example", "a@bench.example"),
                                                  ("a@bench.example", "b@bench.example"))]
        rename = sorted(renames, key=lambda r: r["total"])[1]
        copies = _interleaved(base / "archive" / "DISK2", shm, repeat)
        mv_s = _mv_reference(base / "archive" / "DISK2" / "1", base / "mv-scratch", shm)
        cross = _cross_rounds(env, base / "archive" / "DISK2" / "1", shm, repeat)
        sha_rate, start_s = _sha256_rate(), _bare_start()
        stream = cross["engine"]
        assert sum(1 for _ in (base / "archive" / "DISK2" / "1").iterdir()) == documents
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)

    def mbps(seconds: float) -> str:
        return f"{size / seconds / 1e6:5.0f} MB/s"

    cp_s, rsync_s, ours_s = copies["cp"], copies["rsync"], copies["ours"]
    rate = documents / rename["total"]
    move_s, round_cp_s = cross["move"], cross["cp"]
    print(f"  {documents} documents, {size / 1e9:.2f} GB; each figure after `sync`; "
          "\"speed\" is the reference's time over ours (above 1.00x: faster than the reference)")
    print(f"  same filesystem, {rename['mode']}, median of 3 moves: {rename['total']:6.3f} s  "
          f"{rate:8,.0f} documents/s  (target >= 20,000/s)")
    print(f"    renames {rename['copy']:.3f} s (committed to disk), switch {rename['switch']:.3f} s, "
          f"clean-up {rename['clean_up']:.3f} s")
    print(f"  disk -> /dev/shm, the copy phase alone, alternating rounds, median of {repeat}:")
    print(f"    cp -r                             {cp_s:6.3f} s  {mbps(cp_s)}")
    print(f"    rsync -a                          {rsync_s:6.3f} s  {mbps(rsync_s)}")
    print(f"    ours, copy + verify               {ours_s:6.3f} s  {mbps(ours_s)}  speed {cp_s / ours_s:.2f}x "
          f"cp -r, {rsync_s / ours_s:.2f}x rsync -a")
    print(f"  disk -> /dev/shm, the whole move through `redeem` (its whole process), alternating with "
          f"`cp -r`, median of {repeat}:")
    print(f"    cp -r                             {round_cp_s:6.3f} s  {mbps(round_cp_s)}")
    print(f"    ours                              {move_s:6.3f} s  {mbps(move_s)}  speed "
          f"{round_cp_s / move_s:.2f}x cp -r (target >= 1.00x), {mv_s / move_s:.2f}x mv")
    print(f"      engine: copy {stream['copy']:.3f} s (the source removed alongside), switch "
          f"{stream['switch']:.3f} s, clean-up {stream['clean_up']:.3f} s; the rest is start-up and "
          f"the redeem's checks")
    print(f"    mv (copy, then remove the source) {mv_s:6.3f} s  {mbps(mv_s)}")
    print(f"    back, /dev/shm -> disk            {cross['back']:6.3f} s  {mbps(cross['back'])}")
    peak = max([r["peak_mb"] for r in renames] + [stream["peak_mb"]])
    print(f"  peak memory of the redeem process:  {peak:.0f} MB  (target < 100 MB)")
    # What no verified move can beat here: the CPU that copying (cp -r), hashing every byte
    # and removing the source (rm -rf) need, shared by every core, after a process that only
    # imports SQLAlchemy.
    cores = os.cpu_count() or 1
    hash_s = size / sha_rate
    floor = (cross["cp_cpu"] + hash_s + cross["rm_cpu"]) / cores + start_s
    print(f"  on this machine: cp -r uses {cross['cp_cpu']:.2f} s of CPU, SHA-256 of {size / 1e9:.2f} GB "
          f"{hash_s:.2f} s ({sha_rate / 1e9:.2f} GB/s on one core), rm -rf of the source "
          f"{cross['rm_cpu']:.2f} s; a model, not a timed move: that CPU shared by {cores} cores "
          f"after a bare start ({start_s:.2f} s) gives {floor:.2f} s as the least a verified move "
          f"could take: at best {round_cp_s / floor:.2f}x cp -r")
    return {"rename_docs_per_s": rate, "cp_s": cp_s, "rsync_s": rsync_s, "copy_s": ours_s,
            "copy_speed_vs_cp": cp_s / ours_s, "mv_s": mv_s, "move_cp_s": round_cp_s,
            "move_s": move_s, "move_speed_vs_cp": round_cp_s / move_s, "move_speed_vs_mv": mv_s / move_s,
            "back_s": cross["back"], "peak_rss_mb": peak, "sha256_bytes_per_s": sha_rate,
            "bare_start_s": start_s, "cp_cpu_s": cross["cp_cpu"], "rm_cpu_s": cross["rm_cpu"],
            "verified_move_floor_s": floor,
            "best_possible_speed_vs_cp": round_cp_s / floor}


BENCHES: dict[str, Callable[[argparse.Namespace], dict[str, float]]] = {
    "help": lambda args: bench_help(args.repeat),
    "transfer": lambda args: bench_transfer(args.documents, args.work, max(3, args.repeat // 3)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", help=f"benchmarks to run: {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per start-up measurement")
    parser.add_argument("--documents", type=int, default=5000, help="documents for the transfer benchmark")
    parser.add_argument("--work", type=Path, default=None, help="folder on the disk to measure")
    args = parser.parse_args()
    unknown = set(args.which) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = {}
    for name in args.which or BENCHES:
        results[name] = BENCHES[name](args)
        print()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
