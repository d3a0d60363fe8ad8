"""The public MSSanté mailbox extraction (`Extraction_Correspondance_MSSante`).

Format (shared/specs/mssante.md, directory.md; column list from a public project's study of the
file, i.e. a secondary source, checked against a public parser's column keys — not against an ANS
text, so treat the details as UNVERIFIED): UTF-8, `|`-separated, one header line, 31 columns, one
line per mailbox (BAL). `Type de BAL` is `PER` (personal: a professional, by `Identification
nationale PP` = idNat_PS) or `ORG` (organisational: a structure, by `Identification Structure`);
the address itself is the only key of a mailbox. A trailing `|` is accepted (the person file has
one) though the study counts exactly 31 fields. Applicative mailboxes are not in this file.

`Identification Structure`: its exact form is UNVERIFIED. Accepted here: an idNat_Struct (`1` +
FINESS, `3` + SIRET, spec §2), a bare FINESS (9 chars) or SIRET (14 digits), or the technical id of
the person file (`F…`, `C…`, `R…`); `structure_keys` lists the directory ids it may name, the
importer keeps the first one that exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from socle.referentials.directory.extraction import LineError, _id_safe
from socle.referentials.directory.identifiers import InvalidIdentifier, check_idnat_ps

__all__ = ["MSSANTE_COLUMNS", "Mailbox", "is_mssante_header", "parse_mailbox"]

MSSANTE_COLUMNS: tuple[str, ...] = (
    "Type de BAL",
    "Adresse BAL",
    "Type Identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Type identifiant structure",
    "Identification Structure",
    "Service de rattachement",
    "Civilité d'exercice",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Catégorie profession",
    "Libellé de catégorie profession",
    "Code Profession",
    "Libellé Profession",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Dématérialisation",
    "Raison Sociale structure BAL",
    "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION",
    "L3COMPLEMENTDISTRIBUTION",
    "L4NUMEROVOIE",
    "L4COMPLEMENTNUMEROVOIE",
    "NL4TYPEVOIE",
    "L4LIBELLEVOIE",
    "L5LIEUDITMENTION",
    "L6LIGNEACHEMINEMENT",
    "Code postal",
    "Département",
    "Pays",
)
_N = len(MSSANTE_COLUMNS)
KINDS = ("PER", "ORG")


@dataclass(frozen=True, slots=True)
class Mailbox:
    kind: str  # PER or ORG
    address: str  # lower-cased: e-mail addresses are compared case-insensitively
    idnat: str  # idNat_PS of a personal mailbox ('' when not attached to a national identifier)
    structure_type: str
    structure_id: str
    service: str  # "Service de rattachement" (organisational mailboxes)
    structure_name: str

    def structure_keys(self) -> list[str]:
        """Directory ids (`finess-…`, `siret-…`, `tech-…`) the structure identifier may stand for."""
        value = self.structure_id
        if not value:
            return []
        keys: list[str] = []
        if value[0] == "1" and len(value) == 10:  # idNat_Struct: 1 + FINESS
            keys.append(f"finess-{value[1:]}")
        if value[0] == "3" and len(value) == 15 and value[1:].isdigit():  # 3 + SIRET
            keys.append(f"siret-{value[1:]}")
        if value[0] in "F" and len(value) == 10:  # technical id of a FINESS site
            keys.append(f"finess-{value[1:]}")
        if len(value) == 9:
            keys.append(f"finess-{value}")
        if len(value) == 14 and value.isdigit():
            keys.append(f"siret-{value}")
        keys.append(f"tech-{_id_safe(value)}")
        return list(dict.fromkeys(keys))


def is_mssante_header(header: str) -> bool:
    fields = [f.strip() for f in header.split("|")]
    return len(fields) >= 2 and fields[0] == MSSANTE_COLUMNS[0] and fields[1] == MSSANTE_COLUMNS[1]


def parse_mailbox(text: str) -> Mailbox:
    """One data line → `Mailbox`; `LineError` naming the first problem found."""
    f = text.split("|")
    if len(f) == _N + 1 and f[_N].strip() == "":
        f.pop()
    if len(f) != _N:
        raise LineError(f"expected {_N} fields separated by '|', got {len(f)}")
    f = [v.strip() for v in f]
    kind, address, idnat = f[0].upper(), f[1].lower(), f[4]
    if kind not in KINDS:
        raise LineError(f"unknown mailbox type (Type de BAL) {f[0]!r}: expected PER or ORG")
    local, at, domain = address.partition("@")
    if not (local and at and "." in domain) or " " in address:
        raise LineError(f"not an e-mail address (Adresse BAL): {f[1]!r}")
    if idnat:
        try:
            check_idnat_ps(idnat)
        except InvalidIdentifier as error:
            raise LineError(f"Identification nationale PP: {error.diagnostics}") from None
    if kind == "PER" and not idnat and not f[6]:
        raise LineError("personal mailbox with neither a national identifier nor a structure")
    if kind == "ORG" and not f[6]:
        raise LineError("organisational mailbox without a structure (Identification Structure)")
    return Mailbox(
        kind=kind,
        address=address,
        idnat=idnat,
        structure_type=f[5],
        structure_id=f[6],
        service=f[7],
        structure_name=f[18],
    )
