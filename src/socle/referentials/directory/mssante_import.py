"""Import of the MSSanté extraction: each mailbox onto its professional (Practitioner) or structure.

The file is read first and held as two maps (practitioner id → addresses, structure id → addresses;
a few tens of MB for the national file's ~540,000 lines). The person and FINESS files of the same
run then write their Practitioners and Organizations with their mailboxes already in (no second
version), and a final pass sets the mailboxes of the resources already stored, and, for a full
extraction, closes the mailboxes of the resources the file no longer names (found by their
`MSSANTE_TAG`). A line whose professional or structure is not in the directory is reported with its
number, like a malformed one: its mailbox has nowhere to go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from socle.referentials.directory._upsert import Resource, UpsertCounts, Upserter, strip_server_meta
from socle.referentials.directory.mailboxes import apply_mailboxes, extraction_addresses
from socle.referentials.directory.mapping import practitioner_id
from socle.referentials.directory.mssante_file import parse_mailbox
from socle.store.repository import Store

__all__ = ["MailboxIndex"]

_CHUNK = 2000
Reject = Callable[[int, str], None]


@dataclass
class MailboxIndex:
    full: bool = True
    people: dict[str, list[str]] = field(default_factory=dict)  # Practitioner id → addresses
    structures: dict[str, list[str]] = field(default_factory=dict)  # possible Organization id → addresses
    # (line number, resource type, the ids the line may name): to report the lines that found no one
    lines: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    unattached: int = 0  # personal mailboxes with no national identifier (no Practitioner to carry them)

    def addresses(self, resource_type: str, id_: str) -> list[str] | None:
        if resource_type == "Practitioner":
            return self.people.get(id_)
        if resource_type == "Organization":
            return self.structures.get(id_)
        return None

    def add_line(self, number: int, text: str) -> None:
        """Index one data line; `LineError` if it is malformed."""
        mailbox = parse_mailbox(text)
        if mailbox.kind == "PER" and mailbox.idnat:
            pid = practitioner_id(mailbox.idnat)
            _add(self.people, pid, mailbox.address)
            self.lines.append((number, "Practitioner", (pid,)))
        elif mailbox.kind == "PER":
            self.unattached += 1
        else:
            ids = tuple(mailbox.structure_keys())
            for id_ in ids:
                _add(self.structures, id_, mailbox.address)
            self.lines.append((number, "Organization", ids))

    def with_mailboxes(self, body: Resource) -> Resource:
        """A body about to be written by another file of the run, with its MSSanté mailboxes."""
        found = self.addresses(body["resourceType"], body["id"])
        return body if found is None else apply_mailboxes(body, found)

    def apply(
        self,
        store: Store,
        upserter: Upserter,
        tagged: Iterable[tuple[str, str]],
        reject: Reject,
    ) -> UpsertCounts:
        """Set the mailboxes of stored resources; report the lines whose target does not exist."""
        counts = UpsertCounts()
        wanted = {("Practitioner", id_) for id_ in self.people}
        wanted.update(("Organization", id_) for id_ in self.structures)
        if self.full:
            wanted.update(tagged)  # named by an earlier extraction: maybe closed since
        keys = sorted(wanted)
        found: set[tuple[str, str]] = set()
        for start in range(0, len(keys), _CHUNK):
            with store.write() as conn:
                current = upserter.existing_many(conn, keys[start : start + _CHUNK])
                changed: list[Resource] = []
                for key, body in current.items():
                    if not body:
                        continue  # deleted
                    found.add(key)
                    before = strip_server_meta(body)
                    addresses = self.addresses(*key) or []
                    if not self.full:  # a partial file adds mailboxes, it closes none
                        addresses = [*extraction_addresses(before), *addresses]
                    target = apply_mailboxes(before, addresses)
                    if target == before:
                        counts.unchanged[key[0]] += 1
                        continue
                    changed.append(target)
                    counts.updated[key[0]] += 1
                if changed:
                    store.update_many(conn, changed)
        for number, resource_type, ids in self.lines:
            if not any((resource_type, id_) in found for id_ in ids):
                what = "professional" if resource_type == "Practitioner" else "structure"
                reject(number, f"{what} {' / '.join(ids)} is not in the directory: mailbox not imported")
        return counts


def _add(target: dict[str, list[str]], key: str, address: str) -> None:
    found = target.setdefault(key, [])
    if address not in found:
        found.append(address)
