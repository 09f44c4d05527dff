"""The domain's fixed vocabulary and the small rules that need no database.

See docs/domain.md (from ../shared/domain/rules.md) for where each comes from.
"""

from __future__ import annotations

from typing import Final

#: Rule 2: only these packages can move between environments.
MIGRATABLE_PACKAGES: Final[dict[str, str]] = {
    "exact-online-nl": "Exact Online (NL)",
    "twinfield": "Twinfield",
    "unit4-multivers": "Unit4 Multivers",
    "visma-accountview": "Visma AccountView",
    "xero": "Xero",
}

PLANS: Final = ("premium", "trial")
ROLES: Final = ("superuser", "accountant", "sme_accountant", "authoriser", "client", "restricted_client")
SUPERUSER: Final = "superuser"
PREMIUM: Final = "premium"

#: Rule 14: the address suppliers send invoices to.
MAIL_DOMAIN: Final = "mailtobasecone.com"


def administration_email(office_code: str, administration_code: str) -> str:
    """Rule 14: ``<officecode>.<administrationcode>@mailtobasecone.com``."""
    return f"{office_code}.{administration_code}@{MAIL_DOMAIN}"


def package_label(package: str) -> str:
    return MIGRATABLE_PACKAGES.get(package, package)


def is_migratable(package: str) -> bool:
    return package in MIGRATABLE_PACKAGES


def name_key(name: str) -> str:
    """An administration's name as it is compared (`same_name`)."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def same_name(one: str, other: str) -> bool:
    """Whether two administration names are one company's name as people type it: case,
    runs of white space (and white space at either end) and Unicode compatibility forms
    (NFKC: a full-width letter, a non-breaking space) do not count; anything else does
    ("Garage Smit BV" is not "Garage Smit B.V.", "Cafe" is not "Café")."""
    return name_key(one) == name_key(other)
