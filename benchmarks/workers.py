"""Background transfers: a batch through 1, 2 and 4 worker processes against an inline redeem.

    python benchmarks/workers.py                               # 8 administrations x 2,000 documents
    python benchmarks/workers.py --administrations 4 --documents 500   # quicker
    python benchmarks/workers.py --pg postgresql://postgres@127.0.0.1:5432/test

For each way of moving the batch it makes a PostgreSQL database of its own, loads a world
whose office ACME has the administrations (documents of 2-8 KB of random bytes on the disk
that holds the temporary folder) and whose office BOOK keeps its archive on /dev/shm (so
every document is streamed, hashed and verified, not renamed), offers them all, and times:

- inline: `redeem` of the offer, its whole process;
- N workers: N `worker` processes, started and idle first, then from the start of
  `redeem --background` until every administration is completed (read from the database).

The ways alternate round by round, so that a machine whose speed drifts weighs on all of
them alike. It prints documents and administrations per second for each, the speed-up over inline,
and the JSON of every figure on its last line. Workers run on this one machine here: with
two cores, more than two processes share the same CPUs (the point of workers is several
machines; this shows what one machine adds and what the queue costs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench import tool_env  # noqa: E402 - the benchmarks' one environment for the tool
from scale import _pg_database  # noqa: E402 - the scale benchmark's helper


def _world(folder: Path, administrations: int, documents: int, shm: Path) -> Path:
    rng = random.Random(8)
    acme: dict[str, Any] = {
        "code": "ACME", "name": "Acme", "plan": "premium",
        "users": [{"email": "a@bench.example", "role": "superuser"}],
        "accounting_systems": [{"id": "acme-tw", "package": "twinfield", "catalogue": []}],
        "administrations": []}
    book: dict[str, Any] = {
        "code": "BOOK", "name": "Book", "plan": "premium", "storage": str(shm),
        "users": [{"email": "b@bench.example", "role": "superuser"}],
        "accounting_systems": [{"id": "book-tw", "package": "twinfield", "catalogue": []}]}
    for a in range(administrations):
        code, name = f"{1001 + a}", f"Bench {a + 1} BV"
        docs = folder / code
        docs.mkdir(parents=True)
        for n in range(documents):
            (docs / f"{n}.pdf").write_bytes(rng.randbytes(rng.randint(2000, 8000)))
        for environment in (acme, book):
            environment["accounting_systems"][0]["catalogue"].append({"code": code, "name": name})
        acme["administrations"].append({"code": code, "name": name, "accounting_system": "acme-tw",
                                        "documents": [f"{code}/{n}.pdf" for n in range(documents)]})
    path = folder / "world.json"
    path.write_text(json.dumps({"environments": [acme, book]}))
    return path


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "basecone_migrate", *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"basecone-migrate {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def _unfinished(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(text(
            "SELECT count(*) FROM migration_items WHERE status IN ('in_progress', 'offered')")).scalar_one()
    engine.dispose()
    return int(count)


def run(server: str, world: Path, administrations: int, shm: Path, workers: int) -> dict[str, Any]:
    """One way of moving the batch (workers == 0: inline), in a database of its own."""
    url, drop = _pg_database(server)
    work = Path(tempfile.mkdtemp(prefix="bcm-workers-"))
    env = tool_env()
    env.update({"BASECONE_MIGRATE_DB": url, "BASECONE_MIGRATE_STORAGE": str(work / "archive"),
                "XDG_DATA_HOME": str(work / "xdg"), "XDG_CONFIG_HOME": str(work / "xdg-config")})
    started: list[subprocess.Popen[bytes]] = []
    try:
        _cli(env, "load", str(world))
        codes = [f"{1001 + a}" for a in range(administrations)]
        offer = json.loads(_cli(env, "--as", "a@bench.example", "offer", *codes, "--to", "b@bench.example",
                                "--accept-terms", "--json"))
        redeem = ["--as", "b@bench.example", "redeem", offer["transfercode"], "--accept-terms", "--json"]
        for n in range(workers):
            started.append(subprocess.Popen(
                [sys.executable, "-m", "basecone_migrate", "worker", "--name", f"w{n}"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(2.0 if workers else 0)  # every worker started and listening
        os.sync()
        start = time.perf_counter()
        if workers:
            _cli(env, *redeem, "--background")
            while _unfinished(url):
                time.sleep(0.05)
        else:
            _cli(env, *redeem)
        seconds = time.perf_counter() - start
        status = json.loads(_cli(env, "status", str(offer["migration_id"]), "--json"))
        assert all(i["status"] == "completed" for i in status["items"]), status
        documents = sum(i["documents_total"] for i in status["items"])
        return {"workers": workers, "seconds": seconds, "documents": documents,
                "documents_per_s": documents / seconds, "administrations_per_s": administrations / seconds,
                "processes": sorted({i["worker"].split(":")[0] for i in status["items"]})}
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            process.wait(timeout=120)
        drop()
        shutil.rmtree(work, ignore_errors=True)
        # Emptied for the next round's database, its ownership mark too (a folder belongs
        # to one database: the next would refuse it).
        for child in list(shm.iterdir()) if shm.exists() else []:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--administrations", type=int, default=8)
    parser.add_argument("--documents", type=int, default=2000, help="per administration")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the median is shown")
    parser.add_argument("--pg", default=os.environ.get("BASECONE_MIGRATE_TEST_PG",
                                                      "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if not Path("/dev/shm").is_dir():
        raise SystemExit("this benchmark needs /dev/shm as a second filesystem")
    folder = Path(tempfile.mkdtemp(prefix="bcm-workers-world-"))
    shm = Path(tempfile.mkdtemp(prefix="bcm-workers-", dir="/dev/shm"))
    report: dict[str, Any] = {"administrations": args.administrations, "documents": args.documents,
                              "cores": os.cpu_count(), "runs": []}
    try:
        world = _world(folder, args.administrations, args.documents, shm)
        print(f"{args.administrations} administrations x {args.documents} documents of 2-8 KB, disk -> "
              f"/dev/shm (streamed and verified), PostgreSQL, {os.cpu_count()} cores; median of {args.repeat}")
        configurations = [0, *args.workers]
        samples: dict[int, list[dict[str, Any]]] = {w: [] for w in configurations}
        for _ in range(args.repeat):  # alternating rounds: a machine that drifts weighs on all alike
            for workers in configurations:
                samples[workers].append(run(args.pg, world, args.administrations, shm, workers))
        for workers in configurations:
            runs = samples[workers]
            middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            middle["seconds_all"] = [r["seconds"] for r in runs]
            report["runs"].append(middle)
            inline = report["runs"][0]["seconds"]
            label = "inline redeem" if not workers else f"{workers} worker process{'es' if workers > 1 else ''}"
            print(f"  {label:22s} {middle['seconds']:6.2f} s  {middle['documents_per_s']:8,.0f} documents/s  "
                  f"{middle['administrations_per_s']:5.2f} administrations/s  "
                  f"{inline / middle['seconds']:.2f}x inline  (runs: "
                  f"{', '.join(f'{s:.2f}' for s in middle['seconds_all'])}; moved by "
                  f"{', '.join(middle['processes'])})")
        report["median_spread"] = statistics.median(
            max(r["seconds_all"]) / min(r["seconds_all"]) for r in report["runs"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
