"""The domain's rules, each on its own (domain/rules.py): no database, no I/O."""

from __future__ import annotations

import importlib
import inspect
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from basecone_migrate.domain import rules

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DOMAIN_DOC = Path(__file__).resolve().parents[2] / "docs" / "domain.md"


def test_a_superuser_of_an_environment_is_one_of_its_own() -> None:
    assert rules.is_superuser("superuser")
    assert not any(rules.is_superuser(role) for role in rules.ROLES if role != "superuser")
    assert rules.is_superuser_of("superuser", 7, 7)
    assert not rules.is_superuser_of("superuser", 8, 7)
    assert not rules.is_superuser_of("superuser", None, 7)
    assert not rules.is_superuser_of("accountant", 7, 7)


def test_only_premium_receives() -> None:
    assert rules.can_receive("premium") and not rules.can_receive("trial")
    assert set(rules.PLANS) == {"premium", "trial"}


def test_the_package_never_changes() -> None:
    assert rules.same_package("twinfield", "twinfield")
    assert not rules.same_package("twinfield", "exact-online-nl")


def test_only_the_five_packages_move() -> None:
    assert [p for p in rules.MIGRATABLE_PACKAGES if rules.is_migratable(p)] == [
        "exact-online-nl", "twinfield", "unit4-multivers", "visma-accountview", "xero"]
    assert not rules.is_migratable("snelstart")
    assert rules.package_label("xero") == "Xero" and rules.package_label("snelstart") == "snelstart"


def test_more_than_five_administrations_in_an_offer_warn() -> None:
    assert not rules.offer_is_large(5) and rules.offer_is_large(6)


def test_five_failed_codes_within_fifteen_minutes_lock_redeem_for_fifteen_minutes() -> None:
    minute = timedelta(minutes=1)
    five = [NOW - i * minute for i in range(5)]  # newest first, 4 minutes apart at most
    assert rules.lockout_until(five, NOW) == NOW + 15 * minute
    assert rules.lockout_until(five[:4], NOW) is None  # four are not enough
    assert rules.lockout_until(five, NOW + 15 * minute) is None  # the window has passed
    assert rules.lockout_until(five, NOW + 15 * minute - timedelta(microseconds=1)) == NOW + 15 * minute
    spread = [NOW - i * 4 * minute for i in range(5)]  # 16 minutes from first to last
    assert rules.lockout_until(spread, NOW) is None
    at_the_edge = [NOW - i * 3.75 * minute for i in range(5)]  # exactly 15 minutes
    assert rules.lockout_until(at_the_edge, NOW) == NOW + 15 * minute


def test_a_code_opens_its_offer_once_until_it_expires_or_is_replaced() -> None:
    expires = NOW + timedelta(days=1)
    assert rules.code_usable(None, None, expires, NOW)
    assert not rules.code_usable(NOW, None, expires, NOW)  # spent
    assert not rules.code_usable(None, NOW, expires, NOW)  # replaced by a resend
    assert not rules.code_usable(None, None, NOW, NOW)  # expired at that instant
    assert not rules.code_usable(None, None, NOW - timedelta(seconds=1), NOW)


def test_the_mail_address_follows_the_office_code() -> None:
    assert rules.administration_email("ACME", "1001") == "ACME.1001@mailtobasecone.com"


def test_names_are_one_companys_as_people_type_them() -> None:
    assert rules.same_name("Garage  Smit ", "garage smit")
    assert rules.same_name("Ｇarage Smit", "Garage\u00a0Smit")
    assert not rules.same_name("Garage Smit BV", "Garage Smit B.V.")
    assert not rules.same_name("Cafe", "Café")


# -- docs/domain.md maps each rule to its function ------------------------------------------


def _named_in_the_doc() -> set[str]:
    return set(re.findall(r"`(domain\.[a-z_]+\.[A-Za-z_]+)`", DOMAIN_DOC.read_text()))


def test_every_function_the_doc_names_exists() -> None:
    named = _named_in_the_doc()
    assert len(named) >= 15
    for dotted in sorted(named):
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(f"basecone_migrate.{module}"), name), dotted


@pytest.mark.parametrize("name", sorted(n for n, f in inspect.getmembers(rules, inspect.isfunction)
                                        if f.__module__ == rules.__name__ and not n.startswith("_")))
def test_every_rule_is_in_the_doc(name: str) -> None:
    assert f"domain.rules.{name}" in _named_in_the_doc()


def test_the_undo_window_is_days_after_completion_and_zero_turns_it_off() -> None:
    from datetime import UTC, datetime, timedelta

    from basecone_migrate.domain.rules import within_undo_window

    done = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert within_undo_window(done, 14, done + timedelta(days=14))
    assert not within_undo_window(done, 14, done + timedelta(days=14, seconds=1))
    assert not within_undo_window(done, 0, done)
    assert not within_undo_window(None, 14, done)
