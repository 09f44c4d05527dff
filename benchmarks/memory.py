"""Peak memory and speed of the commands that walk a whole archive, as the archive grows.

    python benchmarks/memory.py                         # 1,000 and 100,000 documents
    python benchmarks/memory.py --documents 1000 20000  # other sizes

For each size it makes one administration of that many small documents (1-4 KB of random
bytes) on the disk that holds the temporary folder, then runs the installed program, each
command in its own process, and reads that process's peak resident memory:

- `load` of the world file (copies every document into the archive, records it);
- `archive verify` (re-hashes every document);
- `redeem` to an environment on the same filesystem (renames), documents per second;
- `redeem` of it onward to an environment on /dev/shm (streams and verifies every byte);
- `undo` of that move (streamed back and verified), beside `cp -r` of the same folder in the
  same direction, then `undo` of the first (renames back), documents per second.

Targets (issue 7): memory flat as the archive grows, `load` <= 120 MB and the others
<= 100 MB at 100,000 documents; same-filesystem redeem >= 25,000 documents/s. The last
line is one JSON document with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench import _cli, _world, tool_env  # noqa: E402 - the transfer benchmark's helpers


def _redeem(env: dict[str, str], sender: str, receiver: str) -> dict[str, Any]:
    offer, _, _ = _cli(env, "--as", sender, "offer", "1001", "--to", receiver, "--accept-terms", "--json")
    code = json.loads(offer)["transfercode"]
    os.sync()
    out, wall, peak = _cli(env, "--as", receiver, "redeem", code, "--accept-terms", "--json")
    [item] = json.loads(out)["items"]
    assert item["status"] == "completed", item
    return {"s": wall, "peak_mb": peak / 1024, "documents": item["documents"]}


def measure(documents: int, work: Path) -> dict[str, Any]:
    shm = Path(tempfile.mkdtemp(prefix="bcm-memory-", dir="/dev/shm"))
    try:
        world = _world(work, documents, shm, sizes=(1000, 4000))
        env = tool_env()
        env.update({"BASECONE_MIGRATE_DB": f"sqlite:///{work / 'bench.db'}",
                    "BASECONE_MIGRATE_STORAGE": str(work / "archive"),
                    "XDG_DATA_HOME": str(work / "xdg"), "XDG_CONFIG_HOME": str(work / "xdg-config")})
        result: dict[str, Any] = {"documents": documents}
        _, result["load_s"], peak = _cli(env, "load", str(world), "--json")
        result["load_peak_mb"] = peak / 1024
        _, result["verify_s"], peak = _cli(env, "archive", "verify", "1001", "--json")
        result["verify_peak_mb"] = peak / 1024
        same = _redeem(env, "a@bench.example", "b@bench.example")
        result["redeem_same_fs_s"], result["redeem_same_fs_peak_mb"] = same["s"], same["peak_mb"]
        result["redeem_same_fs_docs_per_s"] = documents / same["s"]
        across = _redeem(env, "b@bench.example", "c@bench.example")
        result["redeem_cross_fs_s"], result["redeem_cross_fs_peak_mb"] = across["s"], across["peak_mb"]
        # The way back: undo the second move (streamed back from /dev/shm, every byte hashed),
        # beside `cp -r` of the same folder in the same direction; then the first (renames).
        reference = work / "cp-reference"
        started = time.perf_counter()
        subprocess.run(["cp", "-r", str(shm / "1"), str(reference)], check=True)
        os.sync()
        result["cp_r_back_s"] = time.perf_counter() - started
        shutil.rmtree(reference)
        _, result["undo_cross_fs_s"], peak = _cli(env, "--as", "c@bench.example", "undo", "2", "--json")
        result["undo_cross_fs_peak_mb"] = peak / 1024
        result["undo_cross_fs_vs_cp_r"] = result["cp_r_back_s"] / result["undo_cross_fs_s"]
        _, result["undo_same_fs_s"], peak = _cli(env, "--as", "b@bench.example", "undo", "1", "--json")
        result["undo_same_fs_peak_mb"] = peak / 1024
        result["undo_same_fs_docs_per_s"] = documents / result["undo_same_fs_s"]
        return result
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, nargs="*", default=[1000, 100_000])
    args = parser.parse_args()
    runs = []
    for documents in args.documents:
        with tempfile.TemporaryDirectory(prefix="bcm-memory-") as folder:
            r = measure(documents, Path(folder))
        runs.append(r)
        print(f"{documents:>7,} documents: load {r['load_s']:6.1f} s {r['load_peak_mb']:5.0f} MB | "
              f"verify {r['verify_s']:5.1f} s {r['verify_peak_mb']:5.0f} MB | redeem same fs "
              f"{r['redeem_same_fs_docs_per_s']:7,.0f} docs/s {r['redeem_same_fs_peak_mb']:5.0f} MB | "
              f"across {r['redeem_cross_fs_s']:5.1f} s {r['redeem_cross_fs_peak_mb']:5.0f} MB | undo across "
              f"{r['undo_cross_fs_s']:5.1f} s ({r['undo_cross_fs_vs_cp_r']:.2f}x cp -r) "
              f"{r['undo_cross_fs_peak_mb']:5.0f} MB | undo same fs {r['undo_same_fs_docs_per_s']:7,.0f} docs/s "
              f"{r['undo_same_fs_peak_mb']:5.0f} MB", flush=True)
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
