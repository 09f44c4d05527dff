"""Amounts of money as the settings give them (the fee per migrated administration)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Money:
    currency: str
    cents: int

    def __str__(self) -> str:
        return f"{self.currency} {self.amount()}"

    def amount(self) -> str:
        """The amount alone, to the cent: ``49.00``, ``-49.00`` (a credit)."""
        sign = "-" if self.cents < 0 else ""
        return f"{sign}{abs(self.cents) // 100}.{abs(self.cents) % 100:02d}"


def parse_money(text: str) -> Money:
    """`EUR 49.00`, `49.00 EUR` or `49` (euro)."""
    from decimal import Decimal, InvalidOperation

    parts = text.replace(",", ".").split()
    currency = "EUR"
    if len(parts) == 2:
        if parts[0].isalpha():
            currency, parts = parts[0], parts[1:]
        elif parts[1].isalpha():
            currency, parts = parts[1], parts[:1]
    if len(parts) != 1 or len(currency) != 3:
        raise ValueError(text)
    try:
        amount = Decimal(parts[0])
    except InvalidOperation:
        raise ValueError(text) from None
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(text)
    return Money(currency.upper(), int(amount * 100))
