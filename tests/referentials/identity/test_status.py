"""Identity statuses (RNIV): transitions and their evidence, going down, locks, sharing and checks."""

from __future__ import annotations

import pytest

from socle.fhir.errors import Invalid, Unprocessable
from socle.referentials.identity.nir import make_nir
from socle.referentials.identity.profile import OID_NIR, PROFILE_INS, Reliability, patient_resource
from socle.referentials.identity.status import (
    IdentityEvent,
    apply_event,
    check_patient_identity,
    identity_display,
    may_share_ins,
    shareable_patient,
)
from socle.referentials.identity.traits import PartialDate, Traits

NIR = make_nir(1, 1980, 4, "75056", 12)
TRAITS = Traits("DUPONT", ("JEAN", "PAUL"), PartialDate(1980, 4, 2), "male", "75056", ins=NIR)


def event(kind: str, **kw: str) -> IdentityEvent:
    return IdentityEvent(kind, **kw)


def test_the_two_axes_give_the_four_statuses() -> None:
    prov = Reliability()
    recup = apply_event(prov, event("insi-retrieved", lookup="7", date="2025-01-01"))
    vali = apply_event(prov, event("document-checked", document="CN", date="2025-01-01"))
    assert (recup.status, recup.method, recup.collection_date) == ("RECUP", "INSI", "2025-01-01")
    assert (vali.status, vali.validation_mode) == ("VALI", "CN")
    assert apply_event(recup, event("document-checked", document="PA")).status == "QUAL"
    assert apply_event(vali, event("insi-retrieved", lookup="8", method="CV")).status == "QUAL"


def test_each_transition_needs_its_evidence() -> None:
    with pytest.raises(Invalid, match="lookup"):
        apply_event(Reliability(), event("insi-retrieved"))
    with pytest.raises(Invalid, match="type of document"):
        apply_event(Reliability(), event("document-checked"))
    with pytest.raises(Invalid, match="Unknown document type"):
        apply_event(Reliability(), event("document-checked", document="XX"))
    with pytest.raises(Unprocessable, match="does not validate"):
        apply_event(Reliability(), event("document-checked", document="LEP"))
    with pytest.raises(Invalid, match="Unknown identity event"):
        apply_event(Reliability(), event("promote"))


def test_statuses_go_down() -> None:
    qual = Reliability("QUAL", method="INSI", validation_mode="CN")
    down = apply_event(qual, event("document-false", reason="stolen card"))
    assert (down.status, down.validation_mode) == ("RECUP", None)
    assert apply_event(down, event("insi-invalidated")).status == "PROV"
    assert apply_event(qual, event("insi-invalidated")).status == "VALI"


def test_appli_carte_vitale_qualifies_at_once() -> None:
    after = apply_event(Reliability(), event("vitale-app", date="2025-03-04"))
    assert (after.status, after.method, after.validation_mode) == ("QUAL", "AV", "AV")


def test_doubtful_and_fictitious_identities_are_locked_in_prov() -> None:
    qual = Reliability("QUAL", method="INSI", validation_mode="CN")
    doubtful = apply_event(qual, event("doubt"))
    assert (doubtful.status, doubtful.comments) == ("PROV", ("DOUT",))
    with pytest.raises(Unprocessable, match="must not be sent to INSi"):
        apply_event(doubtful, event("insi-retrieved", lookup="1"))
    with pytest.raises(Unprocessable, match="mutually exclusive"):
        apply_event(doubtful, event("fictitious"))
    # Lifting the doubt restores the status the evidence supports.
    assert apply_event(doubtful, event("clear-doubt")).status == "QUAL"
    fictitious = apply_event(Reliability(), event("fictitious"))
    with pytest.raises(Unprocessable):
        apply_event(fictitious, event("document-checked", document="CN"))


def test_only_a_qualified_unflagged_ins_is_shared() -> None:
    assert may_share_ins(Reliability("QUAL"))
    assert not may_share_ins(Reliability("RECUP"))
    assert not may_share_ins(Reliability("QUAL", comments=("DOUT",)))
    recup = patient_resource(TRAITS, reliability=Reliability("RECUP", method="INSI"), ins_system=OID_NIR)
    shared = shareable_patient(recup)
    assert "identifier" not in shared and "identifier" in recup
    qual = patient_resource(
        TRAITS, reliability=Reliability("QUAL", method="INSI", validation_mode="CN"), ins_system=OID_NIR
    )
    assert shareable_patient(qual) is qual and PROFILE_INS in qual["meta"]["profile"]


def test_display_shows_status_traits_and_ins_only_when_retrieved() -> None:
    recup = patient_resource(TRAITS, reliability=Reliability("RECUP", method="INSI"), ins_system=OID_NIR)
    shown = identity_display(recup)
    assert shown["statusLabel"] == "Identité récupérée"
    assert shown["ins"] == {"value": NIR, "system": OID_NIR, "shareable": False}
    assert shown["birthGivenNames"] == ["JEAN", "PAUL"] and shown["birthplace"] == "75056"
    assert "ins" not in identity_display(
        patient_resource(TRAITS, reliability=Reliability("VALI", validation_mode="CN"))
    )


def test_check_patient_identity_names_every_broken_rule() -> None:
    good = patient_resource(
        TRAITS, reliability=Reliability("QUAL", method="INSI", validation_mode="CN"), ins_system=OID_NIR
    )
    check_patient_identity(good)
    bad = patient_resource(
        Traits("DUPONT", (), None, None, None, ins="185077505612399"),
        reliability=Reliability("QUAL", comments=("DOUT", "FICT")),
        ins_system=OID_NIR,
    )
    with pytest.raises(Unprocessable) as caught:
        check_patient_identity(bad)
    texts = " | ".join(i.diagnostics for i in caught.value.issues)
    for words in (
        "mutually exclusive",
        "must stay PROV",
        "key",
        "first given name",
        "birth date",
        "sex",
        "birthplace",
        "validationMode",
    ):
        assert words in texts
    expressions = {i.expression for i in caught.value.issues}
    assert "Patient.identifier[0].value" in expressions and "Patient.birthDate" in expressions
    no_ins = patient_resource(TRAITS, reliability=Reliability("RECUP"))
    with pytest.raises(Unprocessable, match="carries its INS"):
        check_patient_identity(no_ins)
