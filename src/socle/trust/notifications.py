"""Telling a patient something happened to their record (a break-glass access, …).

`Notifier` is the interface; `StoreNotifier` writes a FHIR Communication into the patient's own
compartment, so the message shows in their space (and in `Communication?subject=Patient/…`), in the
same transaction as the event it reports. Other channels (e-mail, SMS, push) would implement the
same Protocol from that Communication.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection

from socle.store.repository import Store

NOTIFICATION_CATEGORY = "https://socle.esante.example/fhir/CodeSystem/notification-category"


class Notifier(Protocol):
    def notify_patient(self, conn: Connection, patient: str, topic: str, text: str) -> str:
        """Send `text` to the patient; returns an id of the notification."""
        ...


class StoreNotifier:
    def __init__(self, store: Store) -> None:
        self.store = store

    def notify_patient(self, conn: Connection, patient: str, topic: str, text: str) -> str:
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = {
            "resourceType": "Communication",
            "status": "completed",
            "category": [{"coding": [{"system": NOTIFICATION_CATEGORY, "code": topic}]}],
            "subject": {"reference": f"Patient/{patient}"},
            "recipient": [{"reference": f"Patient/{patient}"}],
            "sent": now,
            "payload": [{"contentString": text}],
        }
        return self.store.create(conn, body).id
