"""The terms and costs of a migration between environments, as `offer --accept-terms` and
`redeem --accept-terms` accept them (`basecone-migrate terms` prints them first). No I/O."""

from __future__ import annotations

from basecone_migrate.domain.rules import MIGRATABLE_PACKAGES, package_label
from basecone_migrate.domain.transfercode import VALIDITY


def terms(fee: str) -> str:
    """The terms, in plain text, with the fee per administration filled in."""
    packages = ", ".join(package_label(p) for p in MIGRATABLE_PACKAGES)
    return f"""Terms and costs of moving administrations to another environment

Costs
  {fee} per administration the receiver takes, invoiced to the receiving environment.
  Administrations that are rejected or not selected cost nothing.

What moves
  - Each administration moves with its whole archive of documents, and keeps its accounting
    package ({packages}).
  - Its mail address follows the new office code (OFFICE.CODE@mailtobasecone.com); suppliers
    should send invoices to the new address.
  - It is linked to a connection of the same package in the receiving environment, under a
    code from that connection's catalogue: move or re-code it in the package first.

What does not move
  - Users, their access and authorisation workflows stay behind. Authorisers and restricted
    client users lose what they could see. After the move, a Superuser of the receiving
    environment gives users access again (access grant --migration N --user EMAIL).
  - Authorisers must not be part of an authorisation workflow of a moved administration; where
    one is, the sender confirms this (--confirm-checklist).

The transfercode
  - It is mailed to Superusers of the receiving environment, with the sender in Cc, is valid
    for {VALIDITY.days} days, and opens the offer once. The sender can revoke the offer until it is
    redeemed, or resend it with a new code.
  - Only a Superuser of a premium environment who received the code can redeem it. The
    receiver chooses which administrations to take and may reject the offer instead.

Accepting: offer ... --accept-terms (the sender), redeem CODE --accept-terms (the receiver).
"""
