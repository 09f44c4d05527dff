"""The domain's fixed vocabulary and its rules, as pure functions over plain values: the
services gather the facts, call the rule, and act (the message and exit code are theirs).

docs/domain.md maps each rule of ../shared/domain/rules.md to its function here (or in
`lifecycle`, `transfercode`, `money`), and tests/unit/test_rules.py tests each on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
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


#: Rule 5: an offer of more administrations than this gets a warning.
OFFER_WARNING_SIZE: Final = 5
#: Failed codes: this many within the window locks a user's redeem until the window passes.
FAILED_CODE_LIMIT: Final = 5
FAILED_CODE_WINDOW: Final = timedelta(minutes=15)


def is_superuser(role: str) -> bool:
    """Rules 1, 13, 15: only a Superuser offers, redeems, re-links and grants access."""
    return role == SUPERUSER


def is_superuser_of(role: str, user_environment_id: int | None, environment_id: int) -> bool:
    """Rules 1, 13, 15: a Superuser of that environment (a user belongs to one environment)."""
    return is_superuser(role) and user_environment_id == environment_id


def can_receive(plan: str) -> bool:
    """Rule 4: only a premium environment receives administrations."""
    return plan == PREMIUM


def same_package(package: str, other: str) -> bool:
    """Rules 3 and 16: an administration keeps its accounting package wherever it goes."""
    return package == other


def offer_is_large(administrations: int) -> bool:
    """Rule 5: more than five administrations in one offer is allowed, with a warning."""
    return administrations > OFFER_WARNING_SIZE


def lockout_until(failures: Sequence[datetime], now: datetime) -> datetime | None:
    """The end of a user's lock-out from redeeming, or None: ``FAILED_CODE_LIMIT`` codes that
    opened no offer (``failures``: the latest few, newest first) within
    ``FAILED_CODE_WINDOW`` lock redeem until that window has passed since the last one."""
    if len(failures) < FAILED_CODE_LIMIT:
        return None
    last, first = failures[0], failures[FAILED_CODE_LIMIT - 1]
    if last - first <= FAILED_CODE_WINDOW and now < last + FAILED_CODE_WINDOW:
        return last + FAILED_CODE_WINDOW
    return None


def is_past_expiry(expires_at: datetime, now: datetime) -> bool:
    """Rule 7: an offer (and its code) expires at its ``expires_at``: from that instant on it
    can no longer be redeemed, and reads ``expired`` whether or not `expire` has run yet."""
    return expires_at <= now


def code_usable(spent_at: datetime | None, replaced_at: datetime | None, expires_at: datetime,
                now: datetime) -> bool:
    """Rule 7: a transfercode opens its offer once, until it expires or a resend replaces it."""
    return spent_at is None and replaced_at is None and not is_past_expiry(expires_at, now)


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


def within_undo_window(finished_at: datetime | None, days: int, now: datetime) -> bool:
    """A completed move can be undone for ``days`` days after it completed (0: never)."""
    return days > 0 and finished_at is not None and now <= finished_at + timedelta(days=days)
