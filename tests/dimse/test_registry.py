"""DIMSE services registered by SOP class (pacs.dimse.registry).

One dispatcher per DIMSE event routes each request to the handler registered
for its SOP class, and the presentation contexts we accept come from the same
registrations: adding a service (a print film session here) is one registration, after which a
real pynetdicom peer negotiates it and is answered by its handler, while the
archive's own services keep working on the same association.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    BasicFilmSession,
    CTImageStorage,
    ModalityPerformedProcedureStep,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from pacs.archive import Archive
from pacs.dimse.registry import DuplicateRegistration, ServiceRegistry
from pacs.dimse.server import DimseServer, archive_services

MPPS = str(ModalityPerformedProcedureStep)
# Not a service of the archive (MPPS is one now): what the server tests add or expect refused.
FILM_SESSION = str(BasicFilmSession)


def _event(kind: Any, **request: str) -> Event:
    return cast(Event, SimpleNamespace(event=kind, request=SimpleNamespace(**request)))


def test_each_request_goes_to_the_handler_of_its_sop_class() -> None:
    registry = ServiceRegistry()
    registry.register(evt.EVT_C_STORE, ["1.2.3"], lambda event: "first")
    registry.register(evt.EVT_C_STORE, ["1.2.4"], lambda event: "second")
    registry.register(evt.EVT_N_SET, [MPPS], lambda event: "set")
    (_, store), (_, n_set) = registry.handlers()
    assert store(_event(evt.EVT_C_STORE, AffectedSOPClassUID="1.2.4")) == "second"
    assert store(_event(evt.EVT_C_STORE, AffectedSOPClassUID="1.2.3")) == "first"
    # N-SET names its SOP class in Requested SOP Class UID (PS3.7 10.1.3)
    assert n_set(_event(evt.EVT_N_SET, RequestedSOPClassUID=MPPS)) == "set"


def test_a_sop_class_without_a_handler_is_answered_not_supported() -> None:
    registry = ServiceRegistry()
    for kind in (evt.EVT_C_STORE, evt.EVT_C_FIND, evt.EVT_N_CREATE, evt.EVT_C_MOVE):
        registry.register(kind, ["1.2.3"], lambda event: None)
    dispatch = dict(registry.handlers())
    store = dispatch[evt.EVT_C_STORE](_event(evt.EVT_C_STORE, AffectedSOPClassUID="1.2.9"))
    assert store.Status == 0x0122
    ((find, _),) = list(dispatch[evt.EVT_C_FIND](_event(evt.EVT_C_FIND, AffectedSOPClassUID="9")))
    assert find.Status == 0x0122
    created, _ = dispatch[evt.EVT_N_CREATE](_event(evt.EVT_N_CREATE, AffectedSOPClassUID="9"))
    assert created.Status == 0x0122
    assert list(dispatch[evt.EVT_C_MOVE](_event(evt.EVT_C_MOVE, AffectedSOPClassUID="9"))) == [
        (None, None)
    ]


def test_one_sop_class_twice_for_one_event_is_refused() -> None:
    registry = ServiceRegistry()
    registry.register(evt.EVT_C_FIND, ["1.2.3"], lambda event: None)
    with pytest.raises(DuplicateRegistration):
        registry.register(evt.EVT_C_FIND, ["1.2.3"], lambda event: None)


def test_one_context_per_sop_class_and_its_events_must_agree() -> None:
    registry = ServiceRegistry()
    registry.register(evt.EVT_N_CREATE, [MPPS], lambda event: None)
    registry.register(evt.EVT_N_SET, [MPPS], lambda event: None)
    assert [context[0] for context in registry.contexts()] == [MPPS]
    registry.register(evt.EVT_N_GET, [MPPS], lambda event: None, scp_role=True)
    with pytest.raises(DuplicateRegistration):
        list(registry.contexts())


def test_the_acceptor_supports_exactly_the_registered_sop_classes(archive: Archive) -> None:
    server = DimseServer(archive)
    supported = [str(context.abstract_syntax) for context in server.ae.supported_contexts]
    assert sorted(supported) == sorted(server.services.sop_classes())
    assert str(Verification) in supported
    assert str(CTImageStorage) in supported
    assert str(StudyRootQueryRetrieveInformationModelFind) in supported


def test_a_registered_service_is_negotiated_and_answered_beside_the_archive_s(
    archive: Archive,
) -> None:
    created: list[tuple[str, str]] = []

    def n_create(event: Event) -> tuple[int, Dataset]:
        created.append((str(event.request.AffectedSOPInstanceUID), event.attribute_list.Modality))
        return 0x0000, event.attribute_list

    services = archive_services(archive)
    services.register(evt.EVT_N_CREATE, [FILM_SESSION], n_create)
    server = DimseServer(archive, services=services)
    server.start("127.0.0.1", 0)
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(BasicFilmSession)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="PACS")
        assert assoc.is_established
        try:
            attributes = Dataset()
            attributes.Modality = "CT"
            instance = generate_uid()
            status, answer = assoc.send_n_create(attributes, FILM_SESSION, instance)
            echo = assoc.send_c_echo()
        finally:
            assoc.release()
    finally:
        server.stop(grace=2)
    assert status.Status == 0x0000
    assert answer is not None and answer.Modality == "CT"
    assert created == [(instance, "CT")]
    assert echo.Status == 0x0000


def test_an_unregistered_service_is_not_negotiated(dimse_server: DimseServer) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(BasicFilmSession)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", dimse_server.port, ae_title="PACS")
    assert assoc.is_established
    try:
        accepted = {str(context.abstract_syntax) for context in assoc.accepted_contexts}
    finally:
        assoc.release()
    assert accepted == {str(Verification)}
