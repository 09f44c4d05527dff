"""A generated demo world: offices, connections, administrations and documents."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SENDER = "sue@acme.example"
RECEIVER = "tina@bookwise.example"

_ADMINISTRATIONS = [
    # (office, code, name, connection)
    ("ACME", "1001", "Bakkerij Jansen", "acme-tw"),
    ("ACME", "1002", "Garage Smit", "acme-tw"),
    ("ACME", "1003", "Bloemenhuis De Vries", "acme-tw"),
    ("ACME", "2001", "Fietsenmaker Bakker", "acme-eol"),
    ("ACME", "3001", "Kapsalon Mulder", "acme-snel"),
    ("BOOK", "5001", "Drukkerij Visser", "book-tw"),
    ("BOOK", "6001", "Schildersbedrijf Bos", "book-xero"),
    ("TRY", "9001", "Proefbedrijf", "try-tw"),
]


def world(documents: dict[str, list[str]]) -> dict[str, Any]:
    """The demo world; ``documents`` maps an administration code to its files."""

    def admins(office: str) -> list[dict[str, Any]]:
        result = []
        for env, code, name, connection in _ADMINISTRATIONS:
            if env != office:
                continue
            entry: dict[str, Any] = {"code": code, "name": name, "accounting_system": connection,
                                     "documents": documents.get(code, [])}
            if office == "ACME":
                entry["users"] = ["sue@acme.example", "carl@acme.example"]
            if code == "1002":
                entry["workflows"] = [{"name": "Over EUR 1000", "authorisers": ["bob@acme.example"]}]
            result.append(entry)
        return result

    return {"environments": [
        {"code": "ACME", "name": "Acme Accountants", "plan": "premium",
         "users": [{"email": SENDER, "name": "Sue", "role": "superuser"},
                   {"email": "bob@acme.example", "name": "Bob", "role": "authoriser"},
                   {"email": "carl@acme.example", "name": "Carl", "role": "accountant"}],
         "accounting_systems": [
             {"id": "acme-tw", "package": "twinfield", "name": "Twinfield Acme",
              "catalogue": [{"code": c, "name": n} for e, c, n, s in _ADMINISTRATIONS if s == "acme-tw"]},
             {"id": "acme-eol", "package": "exact-online-nl", "name": "Exact Online Acme",
              "catalogue": [{"code": "2001", "name": "Fietsenmaker Bakker"}]},
             {"id": "acme-snel", "package": "snelstart", "name": "SnelStart Acme",
              "catalogue": [{"code": "3001", "name": "Kapsalon Mulder"}]}],
         "administrations": admins("ACME")},
        {"code": "BOOK", "name": "Bookwise Administratie", "plan": "premium",
         "users": [{"email": RECEIVER, "name": "Tina", "role": "superuser"},
                   {"email": "uma@bookwise.example", "name": "Uma", "role": "accountant"}],
         "accounting_systems": [
             {"id": "book-tw", "package": "twinfield", "name": "Twinfield Bookwise",
              "catalogue": [{"code": "1001", "name": "Bakkerij Jansen"},
                            {"code": "B-1002", "name": "Garage Smit"},
                            {"code": "5001", "name": "Drukkerij Visser"}]},
             {"id": "book-tw2", "package": "twinfield", "name": "Twinfield Bookwise (new)",
              "catalogue": [{"code": "1003", "name": "Bloemenhuis De Vries"}]},
             {"id": "book-xero", "package": "xero", "name": "Xero Bookwise",
              "catalogue": [{"code": "6001", "name": "Schildersbedrijf Bos"}]}],
         "administrations": admins("BOOK")},
        {"code": "TRY", "name": "Trial Office", "plan": "trial",
         "users": [{"email": "tom@trial.example", "name": "Tom", "role": "superuser"}],
         "accounting_systems": [{"id": "try-tw", "package": "twinfield", "name": "Twinfield Trial",
                                 "catalogue": [{"code": "9001", "name": "Proefbedrijf"}]}],
         "administrations": admins("TRY")},
    ]}


def write_world(folder: Path, count: int, seed: int = 2026) -> Path:
    """Write ``world.json`` and ``count`` small generated documents under ``folder``."""
    rng = random.Random(seed)
    codes = [code for _, code, _, _ in _ADMINISTRATIONS]
    # Most documents belong to the administrations the demo moves.
    weights = [6 if code in ("1001", "1002") else 1 for code in codes]
    documents: dict[str, list[str]] = {}
    for number in range(1, count + 1):
        code = rng.choices(codes, weights)[0]
        relative = f"docs/{code}/invoice-{number:05d}.pdf"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        body = rng.randbytes(rng.randint(2_000, 24_000))
        path.write_bytes(b"%PDF-1.4\n% demo invoice " + str(number).encode() + b"\n" + body)
        documents.setdefault(code, []).append(relative)
    target = folder / "world.json"
    target.write_text(json.dumps(world(documents), indent=2))
    return target
