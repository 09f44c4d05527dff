"""Archives on S3 at a realistic latency, measured against rclone in the same run (issue 18).

    python benchmarks/s3.py                                   # 300 documents, 3 rounds, 20 ms
    python benchmarks/s3.py --documents 300 --rounds 3 --delay-ms 20 --transfers 16
    python benchmarks/s3.py --rounds 0 --memory-sizes 1000,20000   # only the memory check

It starts moto's S3 server (`ThreadedMotoServer`, in a process of its own) on 127.0.0.1 and
puts tests/netproxy.py's LatencyProxy in front of it: every request reaches the server
--delay-ms after it was sent, so each request and its response cost that much more, as on a
link to a real object store. Both tools talk to the server only through that proxy, which
counts their requests by method. It generates --documents documents of 20-120 KB (random
bytes, --seed) and, in --rounds alternating rounds (each tool once per round; the figures are
medians), times:

1. S3 -> S3, two buckets of the one endpoint: `rclone move --transfers N` of the objects
   against the tool's move of one administration between two environments whose storage
   are those buckets (`basecone-migrate redeem`, its process from start to exit; the offer
   is made before the clock starts). The engine's own copy time (`status --json`, without
   start-up and the redeem's checks) is shown beside it.
2. folder -> S3: `rclone copy --transfers N` of the folder of documents against the tool's
   move of an administration from an environment on the local disk to one on S3 (`redeem`),
   and against `load` of a world whose environment is on S3 (its process, into a database
   already at the current schema).

After each timed run everything is moved back (or removed) with the proxy's delay at zero;
those runs are not measured. The peak memory of each tool is that of its process (maximum
resident set size, from wait4). --memory-sizes runs the tool's S3 -> S3 move once at each
size (documents of 1-4 KB: memory that grows with the archive shows with small documents
as well, and they load quickly) and reports each peak: it should not grow with the size.

The tool reads BASECONE_MIGRATE_S3_TRANSFERS (documents in flight on an object store), set
to --transfers like rclone's --transfers; rclone's other settings are its defaults (8
checkers) plus --s3-no-check-bucket (the buckets exist: no request to create them).

What each tool checks, so that the comparison is fair:
- basecone-migrate checks every document against the SHA-256 it recorded. Between two
  buckets of one endpoint: listings of the source, then for each document one CopyObject
  asking for the copy's SHA-256 (If-Match on the listed ETag), which must be the recorded
  one; the sources are deleted once recorded, a thousand a DeleteObjects: about 1 request
  a document. From a folder: each document read and hashed, sent in one PUT that carries
  its SHA-256, which the server checks and keeps: 1 request a document.
- rclone move between buckets (checked with --dump headers): listings of both sides, a
  server-side copy (CopyObject), a HEAD of the copy whose MD5 (ETag) must be the source's
  from the listing, then the source's DELETE: 3 requests a document. rclone copy from a
  folder: the MD5 of each file computed first and sent as Content-MD5 (the server checks
  it), then a HEAD of the uploaded object whose MD5 must match: 2 requests a document.
  rclone compares MD5s (ETags), where the tool compares SHA-256s; --checksum would only
  change how rclone decides what to skip (nothing here: the targets start empty), and every
  document is far below --s3-upload-cutoff (200 MiB: one PUT each, for both tools).

A "speed" is rclone's time over ours: above 1.00x the tool is faster. Requests per document
count every request that crossed the proxy during the timed run (listings included), and
"server" is the CPU time moto's process used meanwhile. A request sent with "Expect:
100-continue" waits for the server's "100 Continue" before its body: two round trips, not
one; those are counted too. moto answers a few hundred requests
a second on one core, and closes the connection after each answer (every request of either
tool opens one, through the proxy): when its CPU time nears the wall time, the run measures the server's
capacity more than the latency, and the tool that sends fewer requests wins. The last line
is every figure as JSON. Loopback addresses only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import measured, tool_env  # the benchmarks' one way to run and measure a process
from tests.netproxy import LatencyProxy  # the repository's own test helper

KEY, SECRET = "bench-key", "bench-secret"
DOCUMENT_KEY = re.compile(r"(^|/)[0-9]+/[0-9a-f]{64}$")
BUCKETS = ("bcm-a", "bcm-b", "bcm-up", "bcm-load", "rc-a", "rc-b", "rc-up")
MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


# -- processes ------------------------------------------------------------------------


def _process(args: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """Run a program (`bench.measured`): (stdout, wall seconds, its peak resident memory in
    MB, the CPU seconds it used)."""
    out, wall, peak_kb, cpu = measured(args, env)
    return out, wall, peak_kb / 1024, cpu


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _moto() -> Iterator[tuple[str, int]]:
    """moto's S3 server on 127.0.0.1, in its own process (its own interpreter lock): its URL
    and process id."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", MOTO, str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("moto's server did not start")
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a running process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the world ---------------------------------------------------------------------------


def _documents(folder: Path, count: int, sizes: tuple[int, int], seed: int) -> list[str]:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    names = []
    for n in range(count):
        name = f"invoice-{n:05d}.pdf"
        (folder / name).write_bytes(rng.randbytes(rng.randint(*sizes)))
        names.append(name)
    return names


def _office(code: str, user: str, storage: str | None, admins: list[tuple[str, list[str]]]) -> dict[str, Any]:
    office: dict[str, Any] = {
        "code": code, "name": code, "plan": "premium",
        "users": [{"email": user, "role": "superuser"}],
        "accounting_systems": [{"id": f"{code.lower()}-tw", "package": "twinfield",
                                "catalogue": [{"code": "1001", "name": "Bench S3 BV"},
                                              {"code": "2002", "name": "Bench Disk BV"}]}],
        "administrations": [{"code": c, "name": "Bench S3 BV" if c == "1001" else "Bench Disk BV",
                             "accounting_system": f"{code.lower()}-tw", "documents": docs}
                            for c, docs in admins],
    }
    if storage:
        office["storage"] = storage
    return office


# Who acts for each environment.
USERS = {"S3A": "a@bench.example", "S3B": "b@bench.example", "DISK": "d@bench.example",
         "UP": "u@bench.example", "LOAD": "l@bench.example"}


class Bench:
    """The running server, proxy, clients and folders of one benchmark run."""

    def __init__(self, work: Path, endpoint: str, server_pid: int, proxy: LatencyProxy,
                 transfers: int) -> None:
        import boto3

        self.work, self.proxy, self.transfers, self.server_pid = work, proxy, transfers, server_pid
        self.delay = proxy.delay
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        base = tool_env("AWS_", "RCLONE_")
        base.update({"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                     "AWS_DEFAULT_REGION": "us-east-1",
                     "XDG_DATA_HOME": str(work / "xdg-data"), "XDG_CONFIG_HOME": str(work / "xdg-config"),
                     "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
        self.ours = {**base, "BASECONE_MIGRATE_DB": f"sqlite:///{work / 'bench.db'}",
                     "BASECONE_MIGRATE_STORAGE": str(work / "archive"),
                     "BASECONE_MIGRATE_S3_ENDPOINT_URL": proxy.url,
                     "BASECONE_MIGRATE_S3_TRANSFERS": str(transfers)}
        (work / "rclone.conf").write_text("")
        # rclone from variables alone; AWS_CA_BUNDLE (unset above) would make it fail on http.
        self.rclone_env = {**base, "RCLONE_CONFIG": str(work / "rclone.conf"),
                           "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
                           "RCLONE_CONFIG_BENCH_ENDPOINT": proxy.url,
                           "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
                           "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY,
                           "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
                           "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true"}
        for bucket in BUCKETS:
            self.s3.create_bucket(Bucket=bucket)

    # -- helpers ------------------------------------------------------------------------

    @contextmanager
    def untimed(self) -> Iterator[None]:
        """Set-up and the moves back: no delay, they are not measured."""
        self.proxy.delay = 0
        try:
            yield
        finally:
            self.proxy.delay = self.delay

    def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[str, float, float, float]:
        return _process([sys.executable, "-m", "basecone_migrate", *args], env or self.ours)

    def rclone(self, *args: str) -> tuple[str, float, float, float]:
        return _process(["rclone", *args, "--transfers", str(self.transfers), "--s3-no-check-bucket"],
                        self.rclone_env)

    def counted(self, run: Any) -> dict[str, Any]:
        """Run ``run()`` -> (stdout, wall, peak MB, CPU s); add the requests it sent through the proxy and
        the bytes that crossed it both ways (a server-side copy sends no document's bytes)."""
        before, server = self.proxy.counts(), _cpu_seconds(self.server_pid)
        out, wall, peak, cpu = run()
        after, server = self.proxy.counts(), _cpu_seconds(self.server_pid) - server
        requests, continued = Counter(after["requests"]), Counter(after["continued"])
        requests.subtract(before["requests"])
        continued.subtract(before["continued"])
        through = after["sent"] + after["received"] - before["sent"] - before["received"]
        return {"out": out, "s": wall, "peak_mb": peak, "cpu_s": cpu, "requests": {k: v for k, v in requests.items() if v},
                "continued": sum(continued.values()),
                "proxy_bytes": through, "server_cpu_s": server}

    def keys(self, bucket: str, prefix: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def documents(self, bucket: str, prefix: str) -> int:
        """How many of the tool's documents (``<administration>/<sha256>``) are under ``prefix``:
        not its markers or temporary keys."""
        return sum(1 for key in self.keys(bucket, prefix) if DOCUMENT_KEY.search(key))

    def empty(self, bucket: str, prefix: str) -> None:
        keys = self.keys(bucket, prefix)
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})

    def move(self, code: str, sender: str, receiver: str) -> dict[str, Any]:
        """Offer (not timed), then redeem (timed: its whole process); the engine's figures."""
        offer, *_ = self.cli("--as", USERS[sender], "offer", code, "--to", USERS[receiver],
                               "--accept-terms", "--json")
        transfercode = json.loads(offer)["transfercode"]
        run = self.counted(lambda: self.cli("--as", USERS[receiver], "redeem", transfercode,
                                            "--accept-terms", "--json"))
        status, *_ = self.cli("status", str(json.loads(run["out"])["migration_id"]), "--json")
        [item] = json.loads(status)["items"]
        if item["status"] != "completed":
            raise SystemExit(f"the move of {code} from {sender} to {receiver} did not complete: {item}")
        run.update(engine=item.get("timings") or {}, mode=item.get("mode"))
        del run["out"]
        return run


# -- the measurements ----------------------------------------------------------------------


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["s"])[len(runs) // 2]


def _summary(runs: list[dict[str, Any]], documents: int) -> dict[str, Any]:
    """Median time and the median run's other figures; requests per document, mean of runs."""
    middle = _median_run(runs)
    requests: Counter[str] = Counter()
    for run in runs:
        requests.update(run["requests"])
    per_doc = {k: v / len(runs) / documents for k, v in sorted(requests.items())}
    summary = {"s": statistics.median(r["s"] for r in runs), "samples_s": [r["s"] for r in runs],
               "peak_mb": max(r["peak_mb"] for r in runs), "requests_per_document": per_doc,
               "requests_per_document_total": sum(per_doc.values()),
               "expect_100_continue_per_document": sum(r["continued"] for r in runs) / len(runs) / documents,
               "proxy_bytes": statistics.median(r["proxy_bytes"] for r in runs),
               "server_cpu_s": statistics.median(r["server_cpu_s"] for r in runs),
               "cpu_s": statistics.median(r["cpu_s"] for r in runs)}
    if "engine" in middle:
        summary["engine"] = middle["engine"]
        summary["mode"] = middle["mode"]
    return summary


def bench_speed(bench: Bench, documents: int, rounds: int, seed: int) -> dict[str, Any]:
    work = bench.work
    names = _documents(work / "world" / "docs", documents, (20_000, 120_000), seed)
    size = sum((work / "world" / "docs" / n).stat().st_size for n in names)
    paths = [f"docs/{n}" for n in names]
    world = {"environments": [
        _office("S3A", USERS["S3A"], "s3://bcm-a/archive", [("1001", paths)]),
        _office("S3B", USERS["S3B"], "s3://bcm-b/archive", []),
        _office("DISK", USERS["DISK"], None, [("2002", paths)]),
        _office("UP", USERS["UP"], "s3://bcm-up/archive", [])]}
    (work / "world" / "world.json").write_text(json.dumps(world))
    load_world = {"environments": [_office("LOAD", USERS["LOAD"], "s3://bcm-load/ROUND", [("1001", paths)])]}
    with bench.untimed():
        bench.cli("load", str(work / "world" / "world.json"), "--json")
        bench.cli("db", "upgrade", env={**bench.ours, "BASECONE_MIGRATE_DB": f"sqlite:///{work / 'template.db'}"})
        bench.rclone("copy", str(work / "world" / "docs"), "bench:rc-a/archive/1")
    print(f"S3: {documents} documents of 20-120 KB ({size / 1e6:.1f} MB), {bench.delay * 1000:.0f} ms a "
          f"request, {bench.transfers} transfers, {rounds} alternating rounds; work folder {work}")
    runs: dict[str, list[dict[str, Any]]] = {
        "rclone_move": [], "ours_move": [], "rclone_copy": [], "ours_upload": [], "ours_load": []}
    for r in range(rounds):
        runs["rclone_move"].append(bench.counted(
            lambda: bench.rclone("move", "bench:rc-a/archive/1", "bench:rc-b/archive/1")))
        assert len(bench.keys("rc-b", "archive/1/")) == documents and not bench.keys("rc-a", "archive/1/")
        runs["ours_move"].append(bench.move("1001", "S3A", "S3B"))
        runs["rclone_copy"].append(bench.counted(
            lambda r=r: bench.rclone("copy", str(work / "world" / "docs"), f"bench:rc-up/round-{r}")))
        assert len(bench.keys("rc-up", f"round-{r}/")) == documents
        runs["ours_upload"].append(bench.move("2002", "DISK", "UP"))
        database = work / f"load-{r}.db"
        shutil.copyfile(work / "template.db", database)
        world_file = work / "world" / f"load-{r}.json"
        world_file.write_text(json.dumps(load_world).replace("ROUND", f"round-{r}"))
        env = {**bench.ours, "BASECONE_MIGRATE_DB": f"sqlite:///{database}"}
        runs["ours_load"].append(bench.counted(lambda env=env, world_file=world_file: bench.cli(
            "load", str(world_file), "--json", env=env)))
        assert bench.documents("bcm-load", f"round-{r}/") == documents
        with bench.untimed():  # everything back where the next round expects it
            bench.rclone("move", "bench:rc-b/archive/1", "bench:rc-a/archive/1")
            bench.move("1001", "S3B", "S3A")
            bench.move("2002", "UP", "DISK")
            bench.empty("rc-up", f"round-{r}/")
            bench.empty("bcm-load", f"round-{r}/")
        print(f"  round {r + 1}: " + ", ".join(f"{name} {values[-1]['s']:.2f} s"
                                               for name, values in runs.items()))
    result = {name: _summary(values, documents) for name, values in runs.items()}
    result.update(documents=documents, bytes=size, delay_ms=bench.delay * 1000,
                  transfers=bench.transfers, rounds=rounds)
    for ours, theirs in (("ours_move", "rclone_move"), ("ours_upload", "rclone_copy"),
                         ("ours_load", "rclone_copy")):
        result[f"{ours}_speed"] = result[theirs]["s"] / result[ours]["s"]
    _print_speed(result)
    return result


def _print_speed(result: dict[str, Any]) -> None:
    documents, transfers = result["documents"], result["transfers"]
    print(f"  medians of {result['rounds']} rounds; speed = rclone's time over ours (above 1.00x we are "
          "faster; target >= 1.00x);\n  peak = resident memory of the process; requests per document, "
          "MB through the proxy (both ways), CPU seconds of the tool's process and of the S3 server\n"
          "  in the timed run")
    print(f"    {'':<36} {'median':>8} {'docs/s':>7} {'peak':>7} {'speed':>6} {'req/doc':>8} {'MB':>6}"
          f" {'CPU':>6} {'server':>6}  requests per document by method")

    def line(label: str, summary: dict[str, Any], speed: float | None = None) -> None:
        methods = " ".join(f"{m} {n:.2f}" for m, n in summary["requests_per_document"].items())
        if summary["expect_100_continue_per_document"]:
            methods += f"; {summary['expect_100_continue_per_document']:.2f} wait for 100-continue"
        print(f"    {label:<36} {summary['s']:6.2f} s {documents / summary['s']:7.0f} "
              f"{summary['peak_mb']:4.0f} MB {f'{speed:.2f}x' if speed else '':>6} "
              f"{summary['requests_per_document_total']:8.2f} {summary['proxy_bytes'] / 1e6:6.1f} "
              f"{summary['cpu_s']:4.1f} s {summary['server_cpu_s']:4.1f} s  {methods}")

    def engine(summary: dict[str, Any]) -> None:
        if summary.get("engine"):
            phases = ", ".join(f"{k} {v:.2f} s" for k, v in summary["engine"].items())
            print(f"      the engine ({summary.get('mode')}): {phases}; the rest of the process is "
                  "start-up and the redeem's checks")

    print("  S3 -> S3, between two buckets of one endpoint:")
    line(f"rclone move --transfers {transfers}", result["rclone_move"])
    line("basecone-migrate redeem", result["ours_move"], result["ours_move_speed"])
    engine(result["ours_move"])
    print("  folder -> S3:")
    line(f"rclone copy --transfers {transfers}", result["rclone_copy"])
    line("redeem, from a local environment", result["ours_upload"], result["ours_upload_speed"])
    engine(result["ours_upload"])
    line("load, of a world on S3", result["ours_load"], result["ours_load_speed"])
    peak = max(result[k]["peak_mb"] for k in ("ours_move", "ours_upload", "ours_load"))
    print(f"  peak memory of the tool's processes: {peak:.0f} MB (target <= 150 MB)")


def bench_memory(bench: Bench, sizes: list[int], seed: int) -> dict[str, Any]:
    """The tool's S3 -> S3 move of one administration of each size (documents of 1-4 KB),
    each in a database and buckets' prefixes of its own: the redeem process's peak memory."""
    results = []
    print(f"memory: the tool's S3 -> S3 move at {', '.join(f'{s:,}' for s in sizes)} documents of 1-4 KB, "
          f"{bench.delay * 1000:.0f} ms a request, {bench.transfers} transfers")
    for size in sizes:
        folder = bench.work / f"memory-{size}"
        names = _documents(folder / "docs", size, (1_000, 4_000), seed + size)
        paths = [f"docs/{n}" for n in names]
        world = {"environments": [
            _office("S3A", USERS["S3A"], f"s3://bcm-a/memory-{size}", [("1001", paths)]),
            _office("S3B", USERS["S3B"], f"s3://bcm-b/memory-{size}", [])]}
        (folder / "world.json").write_text(json.dumps(world))
        saved = bench.ours
        bench.ours = {**saved, "BASECONE_MIGRATE_DB": f"sqlite:///{folder / 'memory.db'}"}
        try:
            with bench.untimed():
                _, load_s, load_peak, _ = bench.cli("load", str(folder / "world.json"), "--json")
            run = bench.move("1001", "S3A", "S3B")
        finally:
            bench.ours = saved
        moved = bench.documents("bcm-b", f"memory-{size}/")
        assert moved == size, f"{moved} of {size} documents at the target"
        with bench.untimed():
            bench.empty("bcm-b", f"memory-{size}/")
        shutil.rmtree(folder)
        total = sum(run["requests"].values())
        entry = {"documents": size, "move_s": run["s"], "move_peak_mb": run["peak_mb"],
                 "docs_per_s": size / run["s"], "engine": run["engine"],
                 "requests_per_document": total / size, "cpu_s": run["cpu_s"],
                 "server_cpu_s": run["server_cpu_s"],
                 "load_s": load_s, "load_peak_mb": load_peak}
        results.append(entry)
        print(f"  {size:>7,} documents: redeem {run['s']:7.1f} s ({entry['docs_per_s']:5.0f} docs/s), peak "
              f"{run['peak_mb']:4.0f} MB; {entry['requests_per_document']:.2f} requests per document, "
              f"CPU {run['cpu_s']:.1f} s, server CPU {run['server_cpu_s']:.1f} s; "
              f"(load, without delay: {load_s:.1f} s, peak {load_peak:.0f} MB)")
    if len(results) > 1:
        growth = results[-1]["move_peak_mb"] - results[0]["move_peak_mb"]
        print(f"  peak grows by {growth:+.0f} MB from {sizes[0]:,} to {sizes[-1]:,} documents "
              "(target: flat, and <= 150 MB)")
    return {"sizes": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=300, help="documents for the speed rounds")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (0: none)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="added to every request")
    parser.add_argument("--transfers", type=int, default=16,
                        help="rclone's --transfers and the tool's BASECONE_MIGRATE_S3_TRANSFERS")
    parser.add_argument("--memory-sizes", default="",
                        help="comma-separated sizes for the memory check, e.g. 1000,20000 (default: none)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--work", type=Path, default=None, help="folder for the temporary files")
    args = parser.parse_args()
    if shutil.which("rclone") is None:
        raise SystemExit("needs rclone on PATH (Debian: apt-get install rclone)")
    sizes = [int(s.replace("_", "")) for s in args.memory_sizes.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="bcm-s3-bench-", dir=args.work))
    results: dict[str, Any] = {}
    try:
        with _moto() as (endpoint, server_pid), LatencyProxy(endpoint, delay=args.delay_ms / 1000) as proxy:
            bench = Bench(work, endpoint, server_pid, proxy, args.transfers)
            if args.rounds > 0:
                results["speed"] = bench_speed(bench, args.documents, args.rounds, args.seed)
                print()
            if sizes:
                results["memory"] = bench_memory(bench, sizes, args.seed)
                print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
