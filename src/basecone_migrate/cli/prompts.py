"""Questions at a terminal for what the options left out. Never asked without one."""

from __future__ import annotations

import sys
from typing import Any

from basecone_migrate.cli.output import Output, shown
from basecone_migrate.errors import UsageProblem


def questions_for(out: Output) -> TerminalQuestions | None:
    """Questions only for a person: stdin a terminal, no --json, no --no-input. Without
    them a command asks nothing and its Error: line names the option to pass."""
    if out.json_mode or out.no_input or not sys.stdin.isatty():
        return None
    return TerminalQuestions(out)


class TerminalQuestions:
    def __init__(self, out: Output) -> None:
        self.out = out
        self.console = out.err_console

    def _confirm(self, question: str) -> bool:
        from rich.prompt import Confirm

        return Confirm.ask(question, console=self.console, default=False)

    def transfercode(self) -> str:
        from rich.prompt import Prompt

        while True:
            code = Prompt.ask("Transfercode (from the mail; not shown as you type)",
                              console=self.console, password=True).strip()
            if code:
                return code

    def accept_terms(self, fee: str, count: int, environment: str) -> bool:
        self.console.print(f"Migration costs {fee} per administration, invoiced to {environment}. "
                           "The terms: `basecone-migrate terms`.", markup=False)
        return self._confirm("Do you accept the terms and the costs?")

    def confirm_checklist(self, findings: list[str]) -> bool:
        self.console.print("Authorisers are not transferred, and must not be part of an "
                           "authorisation workflow of a moved administration:", markup=False)
        for finding in findings:
            self.console.print(shown(f"  - {finding}"))
        return self._confirm("Confirm the checklist and continue?")

    def select(self, offered: list[dict[str, Any]]) -> list[int]:
        from rich.prompt import Prompt

        self.out.table([("id", "right"), "code", "name", "package"],
                       [(i["administration_id"], i["code"], i["name"], i["package"]) for i in offered],
                       title="Offered administrations")
        answer = Prompt.ask("Take which administrations (ids or codes, comma-separated)",
                            console=self.console, default="all")
        if answer.strip().lower() == "all":
            return [i["administration_id"] for i in offered]
        chosen = []
        for part in answer.replace(" ", ",").split(","):
            part = part.strip()
            if not part:
                continue
            match = [i["administration_id"] for i in offered
                     if str(i["administration_id"]) == part or i["code"] == part]
            if not match:
                raise UsageProblem(f"{part!r} is not one of the offered administrations")
            chosen += match
        return chosen

    def confirm_rejection(self, left: list[dict[str, Any]], reason: str | None) -> str | None:
        from rich.prompt import Confirm, Prompt

        self.console.print("Not taken, so rejected (the sender gets a mail saying so):", markup=False)
        for item in left:
            self.console.print(shown(f"  - {item['code']} {item['name']}"))
        if not Confirm.ask("Reject them?", console=self.console, default=False):
            self.console.print("Then choose again.", markup=False)
            return None
        from basecone_migrate.domain.text import unstorable
        from basecone_migrate.services.migrations.common import REASON_LIMIT

        while reason is None:
            reason = Prompt.ask("Reason for the sender", console=self.console,
                                default="not selected").strip() or "not selected"
            problem = (unstorable(reason) or
                       (f"is {len(reason)} characters; keep it under {REASON_LIMIT}"
                        if len(reason) > REASON_LIMIT else None))
            if problem is not None:
                self.console.print(f"That reason {problem}.", markup=False)
                reason = None
        return reason

    def link(self, item: dict[str, Any], options: list[dict[str, Any]]) -> tuple[str, str]:
        from rich.prompt import IntPrompt

        choices = [(o["id"], e["code"], e["name"]) for o in options for e in o["catalogue"]]
        if not choices:
            raise UsageProblem(f"no connection for {item['code']} {item['name']} has a catalogue")
        self.out.table([("#", "right"), "connection", "code", "name"],
                       [(n, *choice) for n, choice in enumerate(choices, 1)],
                       title=f"Link {item['code']} {item['name']} to")
        number = IntPrompt.ask("Number", console=self.console,
                               choices=[str(n) for n in range(1, len(choices) + 1)])
        connection, code, _ = choices[number - 1]
        return connection, code
