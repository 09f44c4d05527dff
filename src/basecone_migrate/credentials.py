"""Secrets: read from the OS keyring (service KEYRING_SERVICE) before their variables,
handed to S3 as fsspec's options, masked wherever a URL is shown, and the one test of
whether they would cross a network in the clear (`is_loopback_url`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from basecone_migrate.errors import UsageProblem

if TYPE_CHECKING:
    from basecone_migrate.settings import Settings

KEYRING_SERVICE = "basecone-migrate"
MASK = "********"
#: A URL's ``user:password@``: the password runs to the last ``@`` before the query, so one
#: with ``@`` or ``/`` in it (an S3 secret often has ``/``) is masked whole.
_USER_PASSWORD = re.compile(r"^(?P<start>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*):[^?#]*@")
#: Query parameters whose value is a secret: any name holding one of these words.
SECRET_PARAMETERS = ("password", "passwd", "pwd", "secret", "token", "key", "signature",
                     "credential")


def mask_url_password(url: str) -> str:
    """``url`` as it may be shown: the password of ``user:password@`` and the value of every
    query parameter that names a secret (``?password=``, ``secret``, ``token``, ``key``,
    ``sslpassword``, ``X-Amz-Signature``, Azure's ``sig`` ...) masked; anything else as it is."""
    if "://" not in url:
        return url
    url = _USER_PASSWORD.sub(lambda found: f"{found['start']}:{MASK}@", url, count=1)
    base, mark, rest = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = rest.partition("#")
    from urllib.parse import unquote

    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        key = unquote(name).lower()
        if equals and value and (key == "sig" or any(word in key for word in SECRET_PARAMETERS)):
            part = f"{name}={MASK}"
        parts.append(part)
    return f"{base}?{'&'.join(parts)}{hash_mark}{fragment}"


def is_loopback_url(url: str) -> bool:
    """Whether a URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keyring_password(user: str) -> str | None:
    """The secret the OS keyring holds for ``user``; None without one (or without a keyring)."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, user)
    except KeyringError:
        # A headless machine has no keyring backend: fall back to the variable.
        return None


def storage_options(settings: Settings, url: str) -> dict[str, object]:
    """What fsspec needs to open ``url``: for ``s3://``, the endpoint and credentials
    from ``settings`` (without them, botocore's own chain: AWS_* variables, files)."""
    if not url.startswith(("s3://", "s3a://")):
        return {}
    # Several processes share the archive: a listing cached here would miss their writes.
    # One connection for each document in flight (botocore keeps 10 by default); a
    # checksum only where asked for (what the tool sends carries its SHA-256: botocore's
    # own trailer of CRC32s is stored as bytes by some servers); retries as AWS's SDKs
    # do them (SlowDown backed off, an unreachable endpoint told in a second, not ten).
    options: dict[str, object] = {"use_listings_cache": False, "config_kwargs": {
        "max_pool_connections": settings.s3_transfers + 4,
        "request_checksum_calculation": "when_required",
        "retries": {"mode": "standard"}}}
    if settings.s3_endpoint_url:
        options["endpoint_url"] = settings.s3_endpoint_url
    if settings.s3_access_key_id:
        secret = settings.s3_secret_access_key().value
        if not secret:
            raise UsageProblem(
                f"no S3 secret for access key {settings.s3_access_key_id}: store it in the keyring "
                f"(service {KEYRING_SERVICE!r}) or set BASECONE_MIGRATE_S3_SECRET_ACCESS_KEY")
        options.update(key=settings.s3_access_key_id, secret=secret)
    return options
