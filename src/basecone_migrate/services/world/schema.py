"""The world file's shape (pydantic models) and its reading: everything is checked before
anything is written, and an error names the exact place in the file
(``environments[0].administrations[2].accounting_system``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from basecone_migrate.domain.addresses import normalise_address
from basecone_migrate.domain.text import unstorable
from basecone_migrate.errors import UsageProblem
from basecone_migrate.files import UnreadableFile

Text = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^\S(.*\S)?$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = unstorable(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValueError(f"the text {problem}")
        return value


class CatalogueEntryIn(_Model):
    code: Code
    name: Text


class AccountingSystemIn(_Model):
    id: Annotated[str, Field(min_length=1, max_length=100)]
    package: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    name: Text | None = None
    catalogue: list[CatalogueEntryIn] = []

    @field_validator("package")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


def _address(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return normalise_address(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


Email = Annotated[str, BeforeValidator(_address)]


class UserIn(_Model):
    email: Email
    name: Text | None = None
    role: Literal["superuser", "accountant", "sme_accountant", "authoriser", "client", "restricted_client"]


class WorkflowIn(_Model):
    name: Text
    authorisers: list[Email] = []


def _storable_text(value: str) -> str:
    problem = unstorable(value)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return value


class DocumentIn(_Model):
    path: Annotated[str, Field(min_length=1)]
    filename: Annotated[str, Field(min_length=1, max_length=500)] | None = None


#: The tag of a document given as an object; left out of the places errors name.
_ENTRY = "document-entry"

# A document is a path, or {"path", "filename"}. Paths stay plain strings: 100,000 documents
# are then 100,000 small strings, not 100,000 models (about a tenth of the memory).
DocumentEntry = Annotated[
    Annotated[Annotated[str, Field(min_length=1), AfterValidator(_storable_text)], Tag("path")]
    | Annotated[DocumentIn, Tag(_ENTRY)],
    Discriminator(lambda value: _ENTRY if isinstance(value, dict | DocumentIn) else "path"),
]


class AdministrationIn(_Model):
    code: Code
    name: Text
    accounting_system: Annotated[str, Field(min_length=1, max_length=100)]
    users: list[Email] = []
    workflows: list[WorkflowIn] = []
    documents: list[DocumentEntry] = []


class EnvironmentIn(_Model):
    code: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
    name: Text
    plan: Literal["premium", "trial"]
    storage: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    users: list[UserIn] = []
    accounting_systems: list[AccountingSystemIn] = []
    administrations: list[AdministrationIn] = []


class WorldIn(_Model):
    environments: list[EnvironmentIn]


def place(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        if part == _ENTRY:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


#: A world file holds at most this many bytes. Parsed JSON takes up to 26 times its size
#: in memory (16 MiB of nested empty lists: 475 MB); a world of 100,000 documents given as
#: {"path", "filename"} objects is 11 MB (177 MB at its peak), as plain paths 5.4 MB.
MAX_WORLD_BYTES = 16 * 1024 * 1024


def parse_world(path: Path) -> WorldIn:
    from basecone_migrate.files import TooLarge, read_regular

    try:
        raw = read_regular(path, MAX_WORLD_BYTES)
    except TooLarge as exc:
        raise UsageProblem(f"{path}: {exc.reason}, more than a world file may hold: split it into "
                           "several files and load each (a load adds to what is there)") from None
    except UnreadableFile as exc:
        raise UsageProblem(f"{path}: {exc.reason}") from None
    try:
        data = json.loads(raw)
    except RecursionError:
        raise UsageProblem(f"{path}: not valid JSON: nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise UsageProblem(f"{path}: not valid JSON{where}: {reason}") from None
    try:
        return WorldIn.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        where = place(first["loc"]) or "top level"
        message = first["msg"].removeprefix("Value error, ")
        raise UsageProblem(f"{path}: {where}: {message}{more}") from None

