"""The audit chain: every access to health data becomes a hash-chained, checkpoint-signed AuditEvent.

- `canonical`: the canonical JSON and the link hash (what exactly is hashed).
- `events`: a neutral description of an access (`Access`) → FHIR R4 AuditEvent resources.
- `chain`: appending events to the chain (serialized on both backends), checkpoints.
- `group`: group commit of reads' events (the reads waiting at once share one write transaction).
- `signing`: the checkpoint signing key (ES256, encrypted at rest with the master key).
- `verify`: walking the chain and the checkpoints; reports where it was tampered with.
- `queries`: reading AuditEvents back (by id, by patient/date/agent/…), under the access filter.
"""
