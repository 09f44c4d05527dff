"""Settings: option > environment variable > config file > default, each with its source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from basecone_migrate.errors import UsageProblem
from basecone_migrate.settings import Money, Settings, parse_money


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_option_beats_variable_beats_file_beats_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'db = "sqlite:////from/file.db"\nstorage = "/file/archive"\n'
                          'mail_from = "file@example.org"\n')
    env = {"BASECONE_MIGRATE_DB": "sqlite:////from/env.db", "BASECONE_MIGRATE_STORAGE": "/env/archive"}

    settings = Settings.load({"db": "sqlite:////from/option.db"}, env, config)

    assert settings.db_url == "sqlite:////from/option.db"
    assert settings.raw("db").source == "option --db"
    assert settings.storage == "/env/archive"
    assert settings.raw("storage").source == "env BASECONE_MIGRATE_STORAGE"
    assert settings.mail_from == "file@example.org"
    assert settings.raw("mail_from").source == f"config {config}"
    assert settings.smtp_security == "starttls"
    assert settings.raw("smtp_security").source == "default"


def test_defaults_live_in_the_platform_data_folder(tmp_path: Path, isolated_environment: Path) -> None:
    settings = Settings.load({}, {}, tmp_path / "absent.toml")
    data = isolated_environment / "data" / "basecone-migrate"
    assert settings.db_url == f"sqlite:///{data / 'basecone-migrate.db'}"
    assert settings.storage == str(data / "archive")
    assert settings.outbox_dir == data / "outbox"
    assert settings.user is None
    assert settings.smtp_host is None
    assert settings.mail_from == "migrations@basecone.invalid"
    assert settings.fee == Money("EUR", 0)
    assert settings.fixed_now is None


def test_config_file_location_comes_from_the_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'user = "sue@acme.example"\n')
    settings = Settings.load({}, {"BASECONE_MIGRATE_CONFIG": str(config)})
    assert settings.config_path == config
    assert settings.user == "sue@acme.example"


def test_unknown_key_in_config_file_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'smpt_host = "mail"\n')
    with pytest.raises(UsageProblem, match=r"config file .*config.toml: unknown setting 'smpt_host'"):
        Settings.load({}, {}, config)


def test_password_never_comes_from_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'smtp_password = "hunter2"\n')
    with pytest.raises(UsageProblem, match="unknown setting 'smtp_password'"):
        Settings.load({}, {}, config)


def test_bad_toml_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "db = \n")
    with pytest.raises(UsageProblem, match="is not valid TOML"):
        Settings.load({}, {}, config)


def test_a_bad_value_names_its_source_only_when_used(tmp_path: Path) -> None:
    settings = Settings.load({}, {"BASECONE_MIGRATE_SMTP_PORT": "twenty-five"}, tmp_path / "none")
    assert settings.db_url  # other settings still work
    with pytest.raises(UsageProblem) as caught:
        _ = settings.smtp_port
    assert caught.value.message == (
        "SMTP port 'twenty-five' (from env BASECONE_MIGRATE_SMTP_PORT) is not valid: "
        "expected a port number"
    )


def test_clock_and_fee(tmp_path: Path) -> None:
    settings = Settings.load(
        {}, {"BASECONE_MIGRATE_NOW": "2026-03-01T09:30:00Z", "BASECONE_MIGRATE_FEE": "EUR 49.00"},
        tmp_path / "none")
    assert settings.now() == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert settings.fee == Money("EUR", 4900)
    assert str(settings.fee) == "EUR 49.00"


@pytest.mark.parametrize("text", ["EUR", "49.001", "-1", "EURO 5", "5 EUR 6"])
def test_malformed_fees_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_money(text)


def test_plain_paths_and_postgres_urls_are_normalised(tmp_path: Path) -> None:
    settings = Settings.load({"db": str(tmp_path / "x.db")}, {}, tmp_path / "none")
    assert settings.db_url == f"sqlite:///{tmp_path / 'x.db'}"
    settings = Settings.load({"db": "postgresql://u:secret@h/db"}, {}, tmp_path / "none")
    assert settings.db_url == "postgresql+psycopg://u:secret@h/db"
    shown = {row["setting"]: row["value"] for row in settings.describe()}
    assert shown["db"] == "postgresql+psycopg://u:********@h/db"


def test_secrets_are_masked(tmp_path: Path) -> None:
    settings = Settings.load(
        {}, {"BASECONE_MIGRATE_SMTP_USER": "mailer", "BASECONE_MIGRATE_SMTP_PASSWORD": "hunter2"},
        tmp_path / "none")
    rows = {row["setting"]: row for row in settings.describe()}
    assert rows["smtp_password"]["value"] == "********"
    assert rows["smtp_password"]["source"] == "env BASECONE_MIGRATE_SMTP_PASSWORD"
    assert "hunter2" not in repr(settings.describe())


def test_keyring_password_wins_over_the_variable(tmp_path: Path) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        store = {("basecone-migrate", "mailer"): "from-keyring"}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        settings = Settings.load(
            {}, {"BASECONE_MIGRATE_SMTP_USER": "mailer", "BASECONE_MIGRATE_SMTP_PASSWORD": "env"},
            tmp_path / "none")
        password = settings.smtp_password()
        assert password.value == "from-keyring"
        assert password.source == "keyring service 'basecone-migrate'"
    finally:
        keyring.set_keyring(previous)


def test_without_a_keyring_backend_the_variable_is_used(tmp_path: Path) -> None:
    # The fixture selects keyring's "fail" backend, as on a headless server.
    settings = Settings.load(
        {}, {"BASECONE_MIGRATE_SMTP_USER": "mailer", "BASECONE_MIGRATE_SMTP_PASSWORD": "env-secret"},
        tmp_path / "none")
    assert settings.smtp_password().value == "env-secret"


def test_documents_in_flight_on_an_object_store(tmp_path: Path) -> None:
    """``s3_transfers``: 32 unless set; read only by what opens an s3:// archive, so a bad
    value stops nothing else; what it is shows in `config` with its source."""
    settings = Settings.load({}, {}, tmp_path / "absent.toml")
    assert settings.s3_transfers == 32
    assert {r["setting"]: r["value"] for r in settings.describe()}["s3_transfers"] == "32"
    options = settings.storage_options("s3://bucket/prefix")
    assert options["config_kwargs"] == {  # one connection each, and some
        "max_pool_connections": 36, "request_checksum_calculation": "when_required",
        "retries": {"mode": "standard"}}
    assert settings.storage_options("/a/folder") == {}

    settings = Settings.load({}, {"BASECONE_MIGRATE_S3_TRANSFERS": "8"}, tmp_path / "absent.toml")
    assert settings.s3_transfers == 8
    row = {r["setting"]: r for r in settings.describe()}["s3_transfers"]
    assert (row["value"], row["source"]) == ("8", "env BASECONE_MIGRATE_S3_TRANSFERS")

    for bad in ("0", "257", "many", "2.5"):
        settings = Settings.load({}, {"BASECONE_MIGRATE_S3_TRANSFERS": bad}, tmp_path / "absent.toml")
        assert settings.storage_options("/a/folder") == {}
        with pytest.raises(UsageProblem) as raised:
            settings.storage_options("s3://bucket/prefix")
        assert str(raised.value) == (
            f"documents in flight on an object store {bad!r} (from env BASECONE_MIGRATE_S3_TRANSFERS) "
            "is not valid: expected a whole number from 1 to 256")


@pytest.mark.parametrize(("endpoint", "warned"), [
    ("http://127.0.0.1:9000", False),
    ("http://localhost:9000", False),
    ("http://[::1]:9000", False),
    ("https://s3.example.org", False),
    ("http://192.0.2.10:9000", True),  # another machine: documents would cross the network in the clear
    ("http://minio.example.org", True),
])
def test_a_plain_http_endpoint_on_another_machine_is_warned_of_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, warned: bool) -> None:
    pytest.importorskip("s3fs")
    from basecone_migrate.runtime import Runtime

    settings = Settings.load({}, {"BASECONE_MIGRATE_S3_ENDPOINT_URL": endpoint}, tmp_path / "absent.toml")
    runtime = Runtime(settings)
    for prefix in ("a", "b"):  # opening an archive sends no request: nothing leaves this machine
        assert runtime.open_archive(f"s3://bucket/{prefix}").transfers == 32
    err = capsys.readouterr().err
    expected = (f"Warning: the S3 endpoint {endpoint} is plain HTTP on another machine: documents "
                "and credentials travel unencrypted (use an https:// endpoint)\n")
    assert err == (expected if warned else "")
