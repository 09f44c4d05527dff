"""The adapters the other tests reach only through stand-ins, each against a real one.

- The keyring: a real file backend (keyrings.alt's PlaintextKeyring in the test's own data
  folder), filled with the command the operations guide gives (``python -m keyring set``),
  read by the program in its own process, for the SMTP password and the S3 secret.
- SMTP with implicit TLS (``ssl``): aiosmtpd speaking TLS from the first byte on 127.0.0.1,
  with a certificate of a CA made for the test, and a login it checks.
- S3 through the tool's own settings (``BASECONE_MIGRATE_S3_ACCESS_KEY_ID`` and its secret,
  no AWS_* variables), the ``--storage`` option, and an ``s3://`` archive on an installation
  without the ``s3`` extra.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    S3,
    SUE,
    TINA,
    Cli,
    SmtpServer,
    State,
    run_process,
    sample_world,
    snapshot_database,
    without_clock_warning,
    write_world,
)

PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"


@pytest.fixture
def keyring_env(isolated_environment: Path) -> dict[str, str]:
    """A real keyring backend storing in this test's own data folder (and HOME)."""
    pytest.importorskip("keyrings.alt.file")
    return {"PYTHON_KEYRING_BACKEND": PLAINTEXT, "HOME": str(isolated_environment),
            "XDG_DATA_HOME": str(isolated_environment / "data")}


def keyring_set(env: dict[str, str], user: str, secret: str) -> None:
    """As the operations guide says: ``python -m keyring set basecone-migrate USER``."""
    done = subprocess.run([sys.executable, "-m", "keyring", "set", "basecone-migrate", user],
                          input=secret + "\n", env={**os.environ, **env}, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr


def _setting(env: dict[str, str], name: str) -> dict[str, Any]:
    import json

    done = run_process(["config", "--json"], env, timeout=60)
    assert done.returncode == 0, done.stderr
    [found] = [s for s in json.loads(done.stdout)["settings"] if s["setting"] == name]
    return found


# -- SMTP: implicit TLS, a login, the password from the keyring ---------------------------------


def _over_tls(server: Any) -> bool:
    """Whether aiosmtpd's connection is TLS (its session says so only after STARTTLS)."""
    return server.transport.get_extra_info("ssl_object") is not None


@pytest.fixture(scope="module")
def certificate_authority() -> Any:
    import trustme

    return trustme.CA()


def test_mail_goes_over_implicit_tls_with_the_password_from_a_real_keyring(
    env_vars: dict[str, str], loaded: dict[str, Any], keyring_env: dict[str, str],
    certificate_authority: Any, tmp_path: Path
) -> None:
    import email
    import email.policy

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logins: list[tuple[str, str, bool]] = []
    received: list[tuple[Any, bool]] = []

    class Authenticator:
        def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            logins.append((auth_data.login.decode(), auth_data.password.decode(), _over_tls(server)))
            return AuthResult(success=auth_data.password == b"from-the-keyring")

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((email.message_from_bytes(envelope.content, policy=email.policy.default),
                             _over_tls(server)))
            return "250 OK"

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    port = SmtpServer().port  # a free port on 127.0.0.1
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ssl_context=context,
                            authenticator=Authenticator(),
                            auth_require_tls=False)  # aiosmtpd counts only STARTTLS; seen below
    controller.start()
    keyring_set(keyring_env, "mailer", "from-the-keyring")
    env = {**env_vars, **keyring_env, "BASECONE_MIGRATE_SMTP_HOST": "127.0.0.1",
           "BASECONE_MIGRATE_SMTP_PORT": str(port), "BASECONE_MIGRATE_SMTP_SECURITY": "ssl",
           "BASECONE_MIGRATE_SMTP_CA_FILE": str(ca_file), "BASECONE_MIGRATE_SMTP_USER": "mailer",
           # the keyring comes first: this one must not be used
           "BASECONE_MIGRATE_SMTP_PASSWORD": "from-the-environment",
           "BASECONE_MIGRATE_MAIL_FROM": "migrations@basecone.example"}
    try:
        assert _setting(env, "smtp_password")["source"] == "keyring service 'basecone-migrate'"
        offered = run_process(["--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms", "--json"],
                              env, timeout=120)
    finally:
        controller.stop()
    assert offered.returncode == 0, offered.stderr
    assert "queued" not in offered.stderr and "Warning: mail" not in offered.stderr, offered.stderr
    assert logins == [("mailer", "from-the-keyring", True)]
    [(message, encrypted)] = received
    assert encrypted and message["To"] == TINA and message["Cc"] == SUE
    import json

    code = json.loads(offered.stdout)["transfercode"]
    assert code in message.get_body(preferencelist=("plain",)).get_content()
    [row] = Cli(env)("mail", "list", "--json").json()
    assert row["state"] == "sent" and row["attempts"] == 1


def test_implicit_tls_to_a_server_whose_certificate_is_not_trusted_sends_nothing(
    env_vars: dict[str, str], loaded: dict[str, Any], certificate_authority: Any
) -> None:
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    from aiosmtpd.controller import Controller

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(context)
    port = SmtpServer().port
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    env = {**env_vars, "BASECONE_MIGRATE_SMTP_HOST": "127.0.0.1", "BASECONE_MIGRATE_SMTP_PORT": str(port),
           "BASECONE_MIGRATE_SMTP_SECURITY": "ssl"}
    try:
        offered = Cli(env)("--as", SUE, "offer", "1001", "--to", TINA, "--accept-terms")
    finally:
        controller.stop()
    assert offered.exit_code == 0  # the offer stands; its mail waits
    assert "CERTIFICATE_VERIFY_FAILED" in offered.stderr and received == []
    [row] = Cli(env)("mail", "list", "--json").json()
    assert row["state"] == "queued" and "certificate verify failed" in row["last_error"]


# -- S3 through the tool's own settings ----------------------------------------------------------


@pytest.fixture
def s3_without_aws_variables(s3: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """The bucket, and no AWS_* credentials in the environment: only the tool's settings."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    return s3


def _world_on(world_dir: Path) -> Path:
    return write_world(world_dir, sample_world(world_dir))


@pytest.mark.parametrize("secret_from", ["keyring", "environment"])
def test_s3_credentials_from_the_key_id_and_its_secret_and_the_storage_option(
    env_vars: dict[str, str], world_dir: Path, s3_without_aws_variables: S3, keyring_env: dict[str, str],
    isolated_environment: Path, db_url: str, secret_from: str
) -> None:
    s3 = s3_without_aws_variables
    root = s3.url("archive")
    env = {**{k: v for k, v in env_vars.items() if k != "BASECONE_MIGRATE_STORAGE"}, **keyring_env,
           "BASECONE_MIGRATE_S3_ENDPOINT_URL": s3.endpoint, "BASECONE_MIGRATE_S3_ACCESS_KEY_ID": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(isolated_environment / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(isolated_environment / "none")}
    world = _world_on(world_dir)

    before = snapshot_database(db_url)
    refused = run_process(["--storage", root, "load", str(world)], env, timeout=120)
    assert (refused.returncode, refused.stderr) == (2, (
        "Error: no S3 secret for access key testing: store it in the keyring (service "
        "'basecone-migrate') or set BASECONE_MIGRATE_S3_SECRET_ACCESS_KEY\n"))
    assert snapshot_database(db_url) == before and s3.keys("archive") == []

    if secret_from == "keyring":
        keyring_set(env, "testing", "testing")
        source = "keyring service 'basecone-migrate'"
    else:
        env["BASECONE_MIGRATE_S3_SECRET_ACCESS_KEY"] = "testing"
        source = "env BASECONE_MIGRATE_S3_SECRET_ACCESS_KEY"
    assert _setting(env, "s3_secret_access_key")["source"] == source
    loaded = run_process(["--storage", root, "load", str(world)], env, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    documents = Cli(env)("--storage", root, "archive", "list", "1001", "--as", SUE, "--json").json()
    assert len(documents) == 3
    # --storage put them there (the environment's default root: <storage>/<office code>)
    folder = documents[0]["storage_key"].split("/")[0]  # the administration's id
    assert s3.keys(f"archive/ACME/{folder}") == sorted(d["sha256"] for d in documents)
    for d in documents:
        assert hashlib.sha256(s3.read(f"archive/ACME/{d['storage_key']}")).hexdigest() == d["sha256"]
    verified = run_process(["--storage", root, "--as", SUE, "archive", "verify", "1001", "--json"], env,
                           timeout=120)
    assert verified.returncode == 0, verified.stderr


# -- an s3:// archive where the s3 extra is not installed ---------------------------------------

#: Run the program as an installation without s3fs would: importing it fails.
WITHOUT_S3FS = """
import sys
from importlib.abc import MetaPathFinder

class NoS3fs(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "s3fs" or name.startswith("s3fs."):
            raise ImportError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoS3fs())
sys.argv[0] = "basecone-migrate"
from basecone_migrate.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_s3_archive_without_the_s3_extra_is_one_error_and_changes_nothing(
    env_vars: dict[str, str], world_dir: Path, state: State, s3_endpoint: str
) -> None:
    env = {**os.environ, **env_vars, "BASECONE_MIGRATE_S3_ENDPOINT_URL": s3_endpoint}
    world = _world_on(world_dir)
    on_s3 = sample_world(world_dir)
    on_s3["environments"][0]["storage"] = "s3://bucket/acme"
    write_world(world_dir, on_s3, "on-s3.json")
    snapshot = state.take()
    for args in (["--storage", "s3://bucket/archive", "load", str(world)],
                 ["load", str(world_dir / "on-s3.json")]):
        done = subprocess.run([sys.executable, "-c", WITHOUT_S3FS, *args], env=env, capture_output=True,
                              text=True, check=False, timeout=120)
        done.stderr = without_clock_warning(done.stderr)
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1, (args, done.returncode, done.stderr)
        assert lines[0].endswith("; for s3:// install the s3 extra: pip install 'basecone-migrate[s3]'"), lines
        assert lines[0].startswith("Error: the archive s3://bucket/"), lines
        assert "Traceback" not in done.stderr
    assert state.take() == snapshot
