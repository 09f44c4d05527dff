"""What the transfer engine reports as it goes (Rich bars on a terminal, lines otherwise)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What the engine reports as it goes (Rich bars on a terminal, lines otherwise)."""

    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None: ...

    def advance(self, documents: int, size: int) -> None: ...

    def item_finished(self, label: str, status: str, detail: str) -> None: ...


class NoProgress:
    def item_started(self, label: str, documents: int, size: int, documents_done: int,
                     bytes_done: int) -> None:
        pass

    def advance(self, documents: int, size: int) -> None:
        pass

    def item_finished(self, label: str, status: str, detail: str) -> None:
        pass
