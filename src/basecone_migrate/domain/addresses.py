"""E-mail addresses as the tool stores and compares them."""

from __future__ import annotations


def normalise_address(address: str) -> str:
    """A syntactically valid address, lower-cased; ValueError says what is wrong.

    No DNS look-ups (these machines have none, and a typo is the common mistake);
    ``.test`` domains are allowed for test worlds, ``.invalid`` ones are not.
    """
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(address.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not a valid e-mail address: {exc}") from None
    return result.normalized.lower()
