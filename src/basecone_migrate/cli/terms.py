"""`terms`: the terms and costs that `offer` and `redeem` ask to accept, to read first."""


import typer

import basecone_migrate.cli.context as context
from basecone_migrate.cli.context import AsOption, JsonOption


def register(app: typer.Typer) -> None:
    app.command("terms")(show_terms)


def show_terms(ctx: typer.Context, json: JsonOption = False, as_: AsOption = None) -> None:
    """Print the terms and costs of a migration.

    What --accept-terms of offer and redeem accepts: the fee per administration (from
    BASECONE_MIGRATE_FEE), what moves and what does not, and the transfercode's rules.
    """
    from basecone_migrate.domain.terms import terms
    from basecone_migrate.domain.transfercode import VALIDITY

    cli = context.get(ctx, json=json, as_=as_)
    fee = str(cli.settings.fee)
    text = terms(fee)
    payload = {"fee": fee, "per": "administration", "invoiced_to": "the receiving environment",
               "code_valid_days": VALIDITY.days, "text": text}
    cli.out.emit(payload, lambda: cli.out.line(text.rstrip("\n")))
