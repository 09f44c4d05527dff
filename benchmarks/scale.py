"""The scale benchmark: a Basecone of a million migration items, on SQLite and PostgreSQL.

    python benchmarks/scale.py                      # both databases, 1,000,000 items
    python benchmarks/scale.py --items 100000       # a quicker, smaller run
    python benchmarks/scale.py --backends sqlite    # one database
    python benchmarks/scale.py --pg postgresql://postgres@127.0.0.1:5432/test

It builds the world through the tool's own models in bulk (SQLAlchemy Core inserts into the
models' tables, every constraint of the schema holding): 2,000 offices, one of them large
(5,000 administrations, a fifth of all history), about 105,000 administrations, 500,000
migrations of two administrations each, a recipient per migration, an audit row per item.
One administration in each office's offer of two is still `offered` and past its expiry:
100,000 stale offers for `expire`. The rest is history: completed, revoked, expired,
rejected, created over three years.

Then it runs the installed program, each command in its own process, and measures wall time
and peak memory (the process's maximum RSS), next to the reference measured in the same run:

- `expire --json` (marks the 100,000 stale offers; one run: it changes the data);
- `list --search TEXT --json` as a Superuser of the large office, about ten hits: the whole
  process, and the search's own queries timed inside a process that has already started;
- `list --status expired --json`, `status --json` (recent migrations), `audit --since`;
- start-up: `list --json` on an empty SQLite database against `python -c "import sqlalchemy"`.

PostgreSQL runs in a database of its own (created and dropped here). The last line of the
output is one JSON document with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench import tool_env  # noqa: E402 - the benchmarks' one environment for the tool

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OFFICES = 2000
ADMINS_PER_OFFICE = 50
BIG_ADMINS = 5000
CHUNK = 20_000


def _insert(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert

    for start in range(0, len(rows), CHUNK):
        connection.execute(insert(table), rows[start:start + CHUNK])


def build(url: str, items: int, seed: int = 7, offices: int = OFFICES,
          big_admins: int = BIG_ADMINS) -> dict[str, Any]:
    """Fill an empty database at the current schema; returns what the measurements need.

    tests/integration/test_plans.py builds a smaller one (fewer offices) to EXPLAIN on."""
    from sqlalchemy import text

    from basecone_migrate.db import models as m
    from basecone_migrate.db.engine import make_engine, upgrade
    from basecone_migrate.domain.rules import administration_email
    from basecone_migrate.services.migrations.search import offered_text, received_text

    rng = random.Random(seed)
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    migrations_wanted = items // 2
    with engine.begin() as c:
        envs, users, systems, admins = [], [], [], []
        admin_of_office: list[list[int]] = []
        admin_id = 0
        for n in range(offices):
            code = "BIG" if n == 0 else f"O{n:04d}"
            envs.append({"id": n + 1, "code": code, "name": f"Office {code}", "plan": "premium",
                         "storage": None})
            users.append({"id": n + 1, "email": f"su@{code.lower()}.example", "name": f"Su {code}",
                          "role": "superuser", "environment_id": n + 1})
            systems.append({"id": f"{code.lower()}-tw", "environment_id": n + 1,
                            "package": "twinfield", "name": f"Twinfield {code}"})
            mine = []
            for k in range(big_admins if n == 0 else ADMINS_PER_OFFICE):
                admin_id += 1
                mine.append(admin_id)
                admins.append({"id": admin_id, "environment_id": n + 1,
                               "accounting_system_id": f"{code.lower()}-tw", "code": f"{1000 + k}",
                               "name": f"Bedrijf {rng.choice(WORDS)} {admin_id}"})
            admin_of_office.append(mine)
        _insert(c, m.Environment.__table__, envs)
        _insert(c, m.User.__table__, users)
        _insert(c, m.AccountingSystem.__table__, systems)
        _insert(c, m.Administration.__table__, admins)
        admin_by_id = {a["id"]: a for a in admins}

        migrations, recipients, rows, searches, audit = [], [], [], [], []
        statuses = ("completed", "revoked", "expired", "rejected")

        def add(office: int, pair: list[int], created: datetime, status_of: Any) -> None:
            mid = len(migrations) + 1
            target = rng.randrange(offices - 1)
            target += target >= office
            taken = status_of in ("completed",)
            migrations.append({
                "id": mid, "source_environment_id": office + 1,
                "target_environment_id": target + 1 if status_of in ("completed", "rejected") else None,
                "created_by_id": office + 1, "created_at": created,
                "expires_at": created + timedelta(days=15), "code_hint": f"{mid % 10000:04d}",
                "checklist_confirmed": False, "redeemed_at": None, "redeemed_by_id": None,
                "reject_reason": None})
            recipients.append({"migration_id": mid, "email": users[target]["email"]})
            for admin in pair:
                a = admin_by_id[admin]
                row = {
                    "id": len(rows) + 1, "migration_id": mid, "administration_id": admin,
                    "status": status_of, "name": a["name"], "source_code": a["code"],
                    "source_accounting_system_id": a["accounting_system_id"], "package": "twinfield",
                    "source_email": administration_email(envs[office]["code"], a["code"]),
                    "target_accounting_system_id": systems[target]["id"] if taken else None,
                    "target_code": a["code"] if taken else None,
                    "target_email": administration_email(envs[target]["code"], a["code"]) if taken else None,
                    "phase": None, "documents_total": 0, "bytes_total": 0, "documents_done": 0,
                    "bytes_done": 0, "started_at": None,
                    "finished_at": None if status_of == "offered" else created + timedelta(days=1),
                    "error": None, "mode": None, "timings": None}
                target_code = envs[target]["code"] if migrations[-1]["target_environment_id"] else None
                searches.append({"item_id": row["id"], "offered": offered_text(
                    migration_id=mid, administration_id=admin, name=a["name"], code=a["code"],
                    email=row["source_email"], created_at=created,
                    expires_at=created + timedelta(days=15), code_hint=migrations[-1]["code_hint"],
                    target=target_code, recipients=[recipients[-1]["email"]]),
                    "received": received_text(
                    migration_id=mid, administration_id=admin, name=a["name"], created_at=created,
                    system=row["target_accounting_system_id"] or "twinfield",
                    source=envs[office]["code"], package="twinfield")})
                rows.append(row)
                audit.append({"at": created, "actor": users[office]["email"], "action": "offer",
                              "administration_id": admin, "migration_id": mid, "details": {}})

        # The stale offers: every administration once, in pairs of one office.
        pairs = [(office, mine[i:i + 2]) for office, mine in enumerate(admin_of_office)
                 for i in range(0, len(mine) - 1, 2)]
        for office, pair in pairs[:items // 20]:
            add(office, pair, NOW - timedelta(days=rng.randint(16, 40)), "offered")
        stale = len(rows)
        # History: closed migrations, a fifth of them from the large office.
        while len(migrations) < migrations_wanted:
            office = 0 if rng.random() < 0.2 else rng.randrange(1, offices)
            pair = rng.sample(admin_of_office[office], 2)
            add(office, pair, NOW - timedelta(days=rng.randint(60, 1100), seconds=rng.randint(0, 86400)),
                rng.choice(statuses))
        _insert(c, m.Migration.__table__, migrations)
        _insert(c, m.Recipient.__table__, recipients)
        _insert(c, m.MigrationItem.__table__, rows)
        _insert(c, m.MigrationItemSearch.__table__, searches)
        _insert(c, m.AuditEntry.__table__, audit)
        if c.dialect.name == "postgresql":
            for table in ("environments", "users", "administrations", "migrations", "migration_items",
                          "audit_log"):
                c.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))"))
    with engine.connect() as c:
        if c.dialect.name == "postgresql":
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            c.exec_driver_sql("ANALYZE")
    engine.dispose()
    needle = rows[-7]["name"]  # an administration of the history: about ten items name it
    big_needle = next(r["name"] for r in reversed(rows) if r["source_email"].startswith("BIG."))
    return {"items": len(rows), "migrations": len(migrations), "stale": stale,
            "administrations": len(admins), "build_s": time.perf_counter() - started,
            "needle": big_needle, "other_needle": needle}


WORDS = ("Bakkerij", "Garage", "Drukkerij", "Kapsalon", "Schilders", "Bouw", "Transport", "Zuivel",
         "Bloemen", "Fietsen", "Installatie", "Advies", "Horeca", "Tandarts", "Notaris", "Dakwerken")


def _run(env: dict[str, str], *args: str) -> tuple[str, float, float]:
    """The installed program in its own process: (stdout, wall seconds, peak RSS in MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args if args[0] == sys.executable else
                                   [sys.executable, "-m", "basecone_migrate", *args],
                                   env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed: {err.read().decode()}")
        return out.read().decode(), wall, usage.ru_maxrss / 1024


def _median(env: dict[str, str], repeat: int, *args: str) -> tuple[str, float, float]:
    runs = [_run(env, *args) for _ in range(repeat)]
    return runs[0][0], statistics.median(r[1] for r in runs), max(r[2] for r in runs)


def measure(url: str, built: dict[str, Any], repeat: int, work: Path) -> dict[str, Any]:
    env = tool_env()
    env.update({"BASECONE_MIGRATE_DB": url, "BASECONE_MIGRATE_STORAGE": str(work / "archive"),
                "BASECONE_MIGRATE_NOW": NOW.isoformat(), "XDG_DATA_HOME": str(work / "xdg"),
                "XDG_CONFIG_HOME": str(work / "xdg-config")})
    big = ["--as", "su@big.example"]
    results: dict[str, Any] = {}
    out, results["list_search_s"], _ = _median(env, repeat, *big, "list", "--search", built["needle"],
                                               "--json")
    page = json.loads(out)
    results["list_search_hits"] = len(page["offered"]) + len(page["received"])
    _, results["list_s"], _ = _median(env, repeat, *big, "list", "--json")
    _, results["list_expired_s"], _ = _median(env, repeat, *big, "list", "--status", "expired", "--json")
    _, results["status_recent_s"], _ = _median(env, repeat, *big, "status", "--json")
    _, results["audit_since_s"], _ = _median(env, repeat, "audit", "--since", "2026-11-01", "--limit",
                                             "100", "--json")
    results["list_search_query_s"] = _search_in_process(env, built["needle"])
    results["expire_sql_floor_s"] = _expire_floor(url)
    mails_before = _eml_files(work / "xdg")
    out, results["expire_s"], results["expire_peak_mb"] = _run(env, "expire", "--json")
    results["expired"] = json.loads(out)["expired"]
    assert results["expired"] == built["stale"], (results["expired"], built["stale"])
    # The mails that run wrote (without an SMTP host, one .eml file each), counted, and the
    # time this disk takes to create as many new files.
    results["expire_mails"] = _eml_files(work / "xdg") - mails_before
    results["create_files_s"] = _create_files(work / "files", results["expire_mails"])
    out, results["expire_again_s"], _ = _run(env, "expire", "--json")
    assert json.loads(out)["expired"] == 0
    return results


SEARCH = """
import sys, time
from basecone_migrate.runtime import Runtime
from basecone_migrate.services.migrations.overview import list_migrations
from basecone_migrate.settings import Settings
rt = Runtime(Settings.load({"user": "su@big.example"}))
rt.engine  # connected, schema checked: what is left is the search
start = time.perf_counter()
page = list_migrations(rt, search=sys.argv[1])
print(time.perf_counter() - start, len(page["offered"]) + len(page["received"]))
"""


def _search_in_process(env: dict[str, str], needle: str) -> float:
    """The search's own queries (`list --search` without the process's start-up): the
    median of three runs, each in a new process (nothing cached in Python)."""
    runs = [float(_run(env, sys.executable, "-c", SEARCH, needle)[0].split()[0]) for _ in range(3)]
    return statistics.median(runs)


def _expire_floor(url: str) -> float:
    """What the database alone takes for `expire`'s writes: the same guarded UPDATE ...
    RETURNING and INSERT ... SELECT of the audit rows, 5,000 items a statement, sent from an
    open connection with nothing else around them (no start-up, no mails), each batch rolled
    back so that `expire` still finds every stale offer. PostgreSQL is vacuumed afterwards:
    the rolled-back row versions would otherwise weigh on the measured run."""
    from sqlalchemy import bindparam, create_engine, text

    from basecone_migrate.db.tables import migrations
    from basecone_migrate.settings import normalise_db_url

    postgres = url.startswith("postgresql")
    in_ids = "= ANY(CAST(:ids AS INTEGER[]))" if postgres else "IN (SELECT value FROM json_each(:ids))"
    update = text(f"""UPDATE migration_items SET status = 'expired', finished_at = :now FROM migrations
        WHERE migration_items.migration_id = migrations.id AND migration_items.status = 'offered'
          AND migrations.expires_at <= :now AND migration_items.id {in_ids}
        RETURNING migration_items.id, migration_items.migration_id, migration_items.administration_id,
                  migration_items.name, migration_items.source_code, migration_items.package,
                  migration_items.source_email""")
    audit = text(f"""INSERT INTO audit_log (at, actor, action, administration_id, migration_id, details)
        SELECT :now, 'cron', 'expire', administration_id, migration_id, '{{}}' FROM migration_items
        WHERE id {in_ids} ORDER BY id""")
    at = bindparam("now", type_=migrations.c.expires_at.type)  # stored as the tool stores it
    update, audit = update.bindparams(at), audit.bindparams(at)
    engine = create_engine(normalise_db_url(url))
    now = NOW
    with engine.connect() as c:
        stale = c.scalars(text("""SELECT migration_items.id FROM migration_items JOIN migrations
            ON migrations.id = migration_items.migration_id WHERE migration_items.status = 'offered'
            AND migrations.expires_at <= :now ORDER BY migration_items.id""").bindparams(at),
            {"now": now}).all()
        c.rollback()
        start = time.perf_counter()
        for first in range(0, len(stale), 5000):
            group = stale[first:first + 5000]
            ids = "{" + ",".join(map(str, group)) + "}" if postgres else json.dumps(group)
            rows = c.execute(update, {"now": now, "ids": ids}).all()
            assert len(rows) == len(group), (len(rows), len(group))
            c.execute(audit, {"now": now, "ids": ids})
            c.rollback()
        seconds = time.perf_counter() - start
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM (ANALYZE) migration_items, audit_log")
    engine.dispose()
    return seconds


def _eml_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.eml")) if folder.exists() else 0


def _create_files(folder: Path, count: int) -> float:
    """What creating ``count`` new small files costs on this disk: `expire` without an SMTP
    host writes one .eml file per sender."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=folder))
    start = time.perf_counter()
    for n in range(count):
        descriptor = os.open(folder / f"{n:06d}.eml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, b"x" * 3000)
        os.close(descriptor)
    seconds = time.perf_counter() - start
    shutil.rmtree(folder)
    return seconds


def startup(repeat: int, work: Path) -> dict[str, float]:
    """`list --json` on an empty SQLite database against a bare `import sqlalchemy`, interleaved."""
    env = tool_env()
    env.update({"BASECONE_MIGRATE_DB": str(work / "empty.db"), "XDG_DATA_HOME": str(work / "xdg"),
                "BASECONE_MIGRATE_USER": "nobody@example.org"})
    _run(env, "env", "list", "--json")  # creates the schema once
    ours, bare = [], []
    for _ in range(repeat):
        bare.append(_run(env, sys.executable, "-c", "import sqlalchemy")[1])
        ours.append(_run(env, "env", "list", "--json")[1])
    return {"import_sqlalchemy_s": statistics.median(bare), "empty_list_s": statistics.median(ours),
            "empty_list_ratio": statistics.median(ours) / statistics.median(bare)}


def _build_apart(url: str, items: int) -> dict[str, Any]:
    """`build` in a process of its own. Built here, the world would stay in this process's
    memory, and every command it starts would report it: a forked child's peak RSS
    (`ru_maxrss`) counts what it shared with its parent before `exec`."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(build, (url, items))
    return result


def _pg_database(server: str) -> tuple[str, Any]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from basecone_migrate.settings import normalise_db_url

    admin = create_engine(normalise_db_url(server), isolation_level="AUTOCOMMIT")
    name = f"bcm_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_db_url(server)).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


TARGETS = {"expire_s": {"sqlite": 5.0, "postgresql": 3.0}, "expire_peak_mb": 100,
           "list_search_s": {"postgresql": 0.3}, "empty_list_ratio": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--pg", default=os.environ.get("BASECONE_MIGRATE_TEST_PG",
                                                      "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bcm-scale-") as folder:
        work = Path(folder)
        report["startup"] = startup(max(args.repeat, 11), work)
        s = report["startup"]
        print(f"start-up: `env list --json` on an empty SQLite database {s['empty_list_s'] * 1000:6.1f} ms, "
              f"`python -c 'import sqlalchemy'` {s['import_sqlalchemy_s'] * 1000:6.1f} ms: "
              f"{s['empty_list_ratio']:.2f}x (target <= 1.5x)")
        for backend in args.backends:
            drop = None
            if backend == "sqlite":
                url = f"sqlite:///{work / 'scale.db'}"
            else:
                url, drop = _pg_database(args.pg)
            try:
                built = _build_apart(url, args.items)
                print(f"{backend}: built {built['items']:,} items, {built['migrations']:,} migrations, "
                      f"{built['administrations']:,} administrations in {built['build_s']:.0f} s")
                figures = measure(url, built, args.repeat, work)
            finally:
                if drop:
                    drop()
            report[backend] = {**built, **figures}
            f = figures
            print(f"  expire: {f['expired']:,} stale offers in {f['expire_s']:.2f} s, peak "
                  f"{f['expire_peak_mb']:.0f} MB (target <= {TARGETS['expire_s'][backend]} s, <= 100 MB); "
                  f"again: {f['expire_again_s']:.2f} s")
            print(f"  (the database alone, the same UPDATEs and audit INSERTs from an open connection: "
                  f"{f['expire_sql_floor_s']:.2f} s; expire takes {f['expire_s'] / f['expire_sql_floor_s']:.1f}x that)")
            print(f"  (expire wrote {f['expire_mails']:,} mails, without an SMTP host an .eml file each; "
                  f"creating as many new files on this disk takes {f['create_files_s']:.2f} s)")
            print(f"  list --search ({f['list_search_hits']} hits): whole process {f['list_search_s']:.3f} s; "
                  f"the search's queries {f['list_search_query_s']:.3f} s"
                  + (" (target <= 0.3 s)" if backend == "postgresql" else ""))
            print(f"  list {f['list_s']:.3f} s, list --status expired {f['list_expired_s']:.3f} s, "
                  f"status {f['status_recent_s']:.3f} s, audit --since {f['audit_since_s']:.3f} s "
                  "(medians; each includes the start-up above)")
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
