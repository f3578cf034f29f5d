"""Who can be found by name: every subject and the names their events carried, searched
without diacritics. Held in memory (a few thousand people), loaded from the store and
kept current from the live feed: a search costs no scan of millions of events."""

from __future__ import annotations

import threading

from monitor.dashboard.text import fold
from monitor.storage.records import EventRow, Person


class PeopleIndex:
    def __init__(self) -> None:
        self._names: dict[str, dict[str | None, int]] = {}
        self._folded: dict[tuple[str, str | None], str] = {}  # what a search reads
        self._lock = threading.Lock()
        self.loaded = threading.Event()

    def load(self, people: list[Person]) -> None:
        """Everyone the store knows (from `Store.people`), merged with what came since."""
        with self._lock:
            for person in people:
                self._note(person.subject, person.name, person.last_ms)
        self.loaded.set()

    def note(self, events: list[EventRow]) -> None:
        with self._lock:
            for event in events:
                if event.subject:
                    self._note(event.subject, event.name, event.ts_ms)

    def _note(self, subject: str, name: str | None, ts_ms: int) -> None:
        names = self._names.setdefault(subject, {})
        if name not in names:
            self._folded[(subject, name)] = f"{fold(subject)} {fold(name or '')}"
        names[name] = max(ts_ms, names.get(name, ts_ms))

    def search(self, query: str, limit: int = 50) -> list[Person]:
        """People whose subject or a name holds every word of `query`, folded; exact
        subject first, then the most recently seen."""
        found: list[Person] = []
        wanted = fold(query)
        words = wanted.split()
        if not words:
            return []
        with self._lock:
            for (subject, name), text in self._folded.items():
                if all(word in text for word in words):
                    found.append(Person(subject, name, self._names[subject][name]))
        found.sort(key=lambda person: (fold(person.subject) != wanted, -person.last_ms))
        return found[:limit]

    def names_of(self, subject: str) -> list[str]:
        with self._lock:
            names = self._names.get(subject, {})
            return [name for name, _ in sorted(names.items(), key=lambda i: -i[1]) if name]
