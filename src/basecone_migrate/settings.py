"""Where every setting comes from: option > environment variable > config file > default.

Values are kept as the strings the user gave, with their source, and are parsed only when
a command needs them: a malformed SMTP port must not stop `admin list`, and when it does
matter the error names the place to fix it. Secrets (the keyring, masking, S3's options)
are `credentials.py`'s, amounts of money `domain/money.py`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from basecone_migrate.clock import parse_instant
from basecone_migrate.credentials import (
    KEYRING_SERVICE,
    MASK,
    is_loopback_url,  # noqa: F401 - runtime.py imports it from here
    keyring_password,
    mask_url_password,
)
from basecone_migrate.db.urls import normalise_db_url
from basecone_migrate.domain.money import Money, parse_money
from basecone_migrate.errors import UsageProblem

APP_NAME = "basecone-migrate"
ENV_PREFIX = "BASECONE_MIGRATE_"
SMTP_SECURITY = ("starttls", "ssl", "none")
#: Documents in flight at once on an object store (server-side copies, uploads, downloads,
#: checks). At 20 ms a request one document at a time is some 10 a second; 32 in flight
#: reach the speed of `rclone --transfers 16` with room to spare (benchmarks/s3.py).
DEFAULT_S3_TRANSFERS = 32
MAX_S3_TRANSFERS = 256


@dataclass(frozen=True)
class Spec:
    key: str  # the TOML key; the variable is ENV_PREFIX + KEY
    label: str
    option: str | None = None  # the global command-line option, if there is one
    secret: bool = False
    in_file: bool = True  # secrets never come from the config file

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.key.upper()


SPECS: tuple[Spec, ...] = (
    Spec("db", "database URL", option="--db"),
    Spec("storage", "archive storage root", option="--storage"),
    Spec("user", "acting user", option="--as"),
    Spec("smtp_host", "SMTP host"),
    Spec("smtp_port", "SMTP port"),
    Spec("smtp_security", "SMTP security"),
    Spec("smtp_ca_file", "SMTP CA certificates (PEM file)"),
    Spec("smtp_user", "SMTP login"),
    Spec("smtp_password", "SMTP password", secret=True, in_file=False),
    Spec("mail_from", "sender address"),
    Spec("now", "clock", in_file=False),  # clock.py: from the environment only
    Spec("fee", "fee per migrated administration"),
    Spec("s3_endpoint_url", "S3 endpoint (for s3:// archives)"),
    Spec("s3_access_key_id", "S3 access key id", in_file=False),
    Spec("s3_secret_access_key", "S3 secret access key", secret=True, in_file=False),
    Spec("s3_transfers", "documents in flight on an object store"),
    Spec("undo_days", "days a completed move can be undone (0: never)"),
)
SPEC_BY_KEY = {spec.key: spec for spec in SPECS}


@dataclass(frozen=True)
class Resolved:
    value: str | None
    source: str  # "option --db", "env BASECONE_MIGRATE_DB", "config <path>", "default"


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_path(environ: Mapping[str, str]) -> Path:
    explicit = environ.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


#: A config file holds a dozen settings: at most this many bytes.
MAX_CONFIG_BYTES = 64 * 1024


def _read_config(path: Path, warnings: list[str] | None = None) -> dict[str, str]:
    import tomllib

    from basecone_migrate.domain.text import unstorable
    from basecone_migrate.files import TooLarge, UnreadableFile, read_regular

    try:
        data = tomllib.loads(read_regular(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except TooLarge as exc:
        raise UsageProblem(f"config file {path}: {exc.reason}, more than a file of a dozen "
                           "settings needs") from None
    except UnreadableFile as exc:
        if exc.reason == "no such file":
            return {}
        raise UsageProblem(f"config file {path}: {exc.reason}") from None
    except RecursionError:
        raise UsageProblem(f"config file {path} is not valid TOML: nested too deeply") from None
    except UnicodeDecodeError:
        raise UsageProblem(f"config file {path} is not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageProblem(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, str] = {}
    for key, value in data.items():
        spec = SPEC_BY_KEY.get(key)
        if key == "now" and warnings is not None:  # left behind in a file, it would turn time back
            warnings.append(f"config file {path}: `now` is ignored: only BASECONE_MIGRATE_NOW sets the clock")
            continue
        if spec is None or not spec.in_file:
            known = ", ".join(s.key for s in SPECS if s.in_file)
            raise UsageProblem(f"config file {path}: unknown setting {key!r} (known: {known})")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UsageProblem(f"config file {path}: {key} must be a string or a number")
        problem = unstorable(value) if isinstance(value, str) else None
        if problem is not None:
            raise UsageProblem(f"config file {path}: {key} {problem}")
        values[key] = str(value)
    return values


class Settings:
    """The effective settings of one run."""

    def __init__(
        self,
        resolved: Mapping[str, Resolved],
        *,
        config_path: Path,
        data_dir: Path,
        environ: Mapping[str, str],
        warnings: tuple[str, ...] = (),
    ) -> None:
        self._resolved = dict(resolved)
        #: What the user should hear about the settings themselves (`CLI.settings` prints them).
        self.warnings = warnings
        self.config_path = config_path
        self.data_dir = data_dir
        self._environ = environ

    @classmethod
    def load(
        cls,
        options: Mapping[str, str | None] | None = None,
        environ: Mapping[str, str] | None = None,
        config_path: Path | None = None,
    ) -> Settings:
        environ = os.environ if environ is None else environ
        options = options or {}
        path = config_path or default_config_path(environ)
        warnings: list[str] = []
        from_file = _read_config(path, warnings)
        resolved: dict[str, Resolved] = {}
        for spec in SPECS:
            option_value = options.get(spec.key)
            if option_value is not None and spec.option:
                resolved[spec.key] = Resolved(option_value, f"option {spec.option}")
            elif environ.get(spec.variable):
                resolved[spec.key] = Resolved(environ[spec.variable], f"env {spec.variable}")
            elif spec.key in from_file:
                resolved[spec.key] = Resolved(from_file[spec.key], f"config {path}")
            else:
                resolved[spec.key] = Resolved(None, "default")
        return cls(resolved, config_path=path, data_dir=default_data_dir(), environ=environ,
                   warnings=tuple(warnings))

    def overridden(self, source: str, data_dir: Path | None = None, **values: str) -> Settings:
        """A copy with some settings replaced (the demo uses this for its own folder)."""
        resolved = dict(self._resolved)
        for key, value in values.items():
            resolved[key] = Resolved(value, source)
        return Settings(resolved, config_path=self.config_path, data_dir=data_dir or self.data_dir,
                        environ=self._environ)

    # -- raw access -------------------------------------------------------

    def raw(self, key: str) -> Resolved:
        return self._resolved[key]

    def _invalid(self, key: str, why: str) -> UsageProblem:
        spec = SPEC_BY_KEY[key]
        where = self._resolved[key].source
        return UsageProblem(
            f"{spec.label} {self._resolved[key].value!r} (from {where}) is not valid: {why}"
        )

    # -- typed settings -------------------------------------------------------

    @cached_property
    def db_url(self) -> str:
        value = self._resolved["db"].value
        if not value:
            return f"sqlite:///{self.data_dir / 'basecone-migrate.db'}"
        return normalise_db_url(value)

    @property
    def db_is_default(self) -> bool:
        """The SQLite file in the data folder: the one database whose archive and outbox are
        the data folder's own ``archive/`` and ``outbox/`` (any other has folders of its own)."""
        return self.db_url == f"sqlite:///{self.data_dir / 'basecone-migrate.db'}"

    def database_folder(self, identity: str) -> Path:
        """Where a database other than the default keeps its default archive and outbox:
        named by its identity, so that no two databases ever share them."""
        return self.data_dir / "databases" / identity

    @cached_property
    def storage(self) -> str | None:
        """The storage root given (option, variable, file), the default database's
        ``archive/``, or None: one per database (`Runtime.storage_root`)."""
        value = self._resolved["storage"].value
        if not value:
            return str(self.data_dir / "archive") if self.db_is_default else None
        if "://" in value:
            return value.rstrip("/")
        return str(Path(value).expanduser().resolve())

    @property
    def user(self) -> str | None:
        value = self._resolved["user"].value
        return value.strip() if value and value.strip() else None

    @property
    def smtp_host(self) -> str | None:
        return self._resolved["smtp_host"].value or None

    @cached_property
    def smtp_port(self) -> int | None:
        value = self._resolved["smtp_port"].value
        if not value:
            return None
        try:
            port = int(value)
        except ValueError:
            raise self._invalid("smtp_port", "expected a port number") from None
        if not 0 < port < 65536:
            raise self._invalid("smtp_port", "expected a port number between 1 and 65535")
        return port

    @cached_property
    def smtp_security(self) -> str:
        value = (self._resolved["smtp_security"].value or "starttls").lower()
        if value not in SMTP_SECURITY:
            raise self._invalid("smtp_security", "expected one of " + ", ".join(SMTP_SECURITY))
        return value

    @cached_property
    def smtp_ca_file(self) -> Path | None:
        """CA certificates that SMTP servers are checked against instead of the system's."""
        value = self._resolved["smtp_ca_file"].value
        if not value:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise self._invalid("smtp_ca_file", "no such file (a PEM file of CA certificates)")
        return path

    @property
    def smtp_user(self) -> str | None:
        return self._resolved["smtp_user"].value or None

    def smtp_password(self) -> Resolved:
        """The SMTP password: the OS keyring first, else the environment variable."""
        return self._keyring_first(self.smtp_user, "smtp_password")

    def _keyring_first(self, user: str | None, key: str) -> Resolved:
        """``user``'s secret in the OS keyring (`credentials.keyring_password`), else ``key``'s."""
        from_keyring = keyring_password(user) if user else None
        if from_keyring:
            return Resolved(from_keyring, f"keyring service {KEYRING_SERVICE!r}")
        return self._resolved[key]

    @property
    def mail_from(self) -> str:
        return self._resolved["mail_from"].value or "migrations@basecone.invalid"

    @cached_property
    def fixed_now(self) -> datetime | None:
        value = self._resolved["now"].value
        if not value:
            return None
        try:
            return parse_instant(value)
        except ValueError:
            raise self._invalid("now", "expected an ISO-8601 instant such as 2026-01-31T09:00:00Z") from None

    def now(self) -> datetime:
        return self.fixed_now or datetime.now(UTC)

    @cached_property
    def fee(self) -> Money:
        value = self._resolved["fee"].value
        if not value:
            return Money("EUR", 0)
        try:
            return parse_money(value)
        except ValueError:
            raise self._invalid("fee", "expected an amount such as 'EUR 49.00'") from None

    @cached_property
    def s3_endpoint_url(self) -> str | None:
        value = self._resolved["s3_endpoint_url"].value
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise self._invalid("s3_endpoint_url", "expected an http:// or https:// URL")
        return value.rstrip("/")

    @cached_property
    def s3_transfers(self) -> int:
        value = self._resolved["s3_transfers"].value
        if not value:
            return DEFAULT_S3_TRANSFERS
        try:
            transfers = int(value)
        except ValueError:
            transfers = 0
        if not 1 <= transfers <= MAX_S3_TRANSFERS:
            raise self._invalid("s3_transfers", f"expected a whole number from 1 to {MAX_S3_TRANSFERS}")
        return transfers

    @cached_property
    def undo_days(self) -> int:
        value = (self._resolved["undo_days"].value or "14").strip()
        if not value.isdigit() or int(value) > 3650:
            raise self._invalid("undo_days", "expected a whole number of days from 0 to 3650")
        return int(value)

    @property
    def s3_access_key_id(self) -> str | None:
        return self._resolved["s3_access_key_id"].value or None

    def s3_secret_access_key(self) -> Resolved:
        """The S3 secret for ``s3_access_key_id``: the OS keyring first (service
        basecone-migrate, user = the key id), else the environment variable."""
        return self._keyring_first(self.s3_access_key_id, "s3_secret_access_key")

    def storage_options(self, url: str) -> dict[str, object]:
        """What fsspec needs to open ``url`` (`credentials.storage_options`)."""
        from basecone_migrate.credentials import storage_options

        return storage_options(self, url)

    @property
    def outbox_dir(self) -> Path | None:
        """The default database's outbox; None for any other (one per database:
        `Runtime.outbox_dir`)."""
        return self.data_dir / "outbox" if self.db_is_default else None

    # -- reporting -----------------------------------------------------------

    def describe(self) -> list[dict[str, str | None]]:
        """Each setting, its effective value (secrets masked) and where it came from."""
        rows: list[dict[str, str | None]] = []
        defaults = {"smtp_security": "starttls", "mail_from": self.mail_from, "fee": "EUR 0.00",
                    "s3_transfers": str(DEFAULT_S3_TRANSFERS), "undo_days": "14"}
        for spec in SPECS:
            resolved = self._resolved[spec.key]
            if spec.key == "smtp_password":
                resolved = self.smtp_password()
            if spec.key == "s3_secret_access_key":
                resolved = self.s3_secret_access_key()
            if spec.key in ("db", "storage"):  # shown as the tool will use them
                value: str | None = self.db_url if spec.key == "db" else (
                    self.storage or str(self.database_folder("<database identity>") / "archive"))
            else:
                value = resolved.value or defaults.get(spec.key)
            if spec.secret and value:
                value = MASK
            rows.append({"setting": spec.key, "description": spec.label, "variable": spec.variable,
                         "value": mask_url_password(value) if value else value,  # any URL's secrets
                         "source": resolved.source})
        return rows

