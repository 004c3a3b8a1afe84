"""The storage SOP classes we accept over DIMSE: pynetdicom's, the retired ones, private ones.

pynetdicom's list stops at the SOP classes current in the standard, but
modalities in service still send retired ones (Ultrasound Image Storage
(Retired) 1.2.840.10008.5.1.4.1.1.6, Nuclear Medicine (Retired) ...1.1.5, VL
Image Storage - Trial ...1.77.1), and some vendors send private storage SOP
classes. STOW-RS stores them all; DIMSE refused the association's context.
The retired ones come from pydicom's UID dictionary, the private ones from the
``extra_storage_sop_classes`` setting. Each is registered with pynetdicom as a
storage SOP class, which its association needs to pick the Storage service
for a request (an unknown SOP class would abort the association).

There is no limit to the contexts an acceptor supports; a requestor proposes at
most 128 per association (PS3.8 9.3.2.2: context IDs are odd numbers 1-255).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom._uid_dict import UID_dictionary
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import register_uid, uid_to_service_class

from pacs.uids import check_uid

# Retired SOP classes named "... Storage" that are not image/object storage services.
_NOT_OBJECT_STORAGE = ("Commitment", "Media Storage Directory", "Stored Print")


def retired_storage_sop_classes() -> list[str]:
    """Retired storage SOP classes from pydicom's dictionary, which pynetdicom leaves out."""
    return [
        uid
        for uid, (name, kind, _info, retired, _keyword) in UID_dictionary.items()
        if kind == "SOP Class"
        and retired == "Retired"
        and "Storage" in name
        and not any(word in name for word in _NOT_OBJECT_STORAGE)
    ]


def storage_sop_classes(extra: Iterable[str] = ()) -> list[str]:
    """Every storage SOP class we accept, each registered with pynetdicom as storage.

    ``extra`` are private (or otherwise unknown) storage SOP class UIDs from the
    settings; a malformed UID raises :class:`~pacs.uids.InvalidUID`.
    """
    known = [str(context.abstract_syntax) for context in AllStoragePresentationContexts]
    added = [*retired_storage_sop_classes()]
    for uid in extra:
        check_uid(uid, "extra storage SOP class")
        added.append(uid)
    for uid in added:
        _register_as_storage(uid)
    return list(dict.fromkeys([*known, *added]))


def _register_as_storage(uid: str) -> None:
    """Have pynetdicom serve ``uid`` with its Storage service class (idempotent)."""
    if uid_to_service_class(uid) is StorageServiceClass:
        return
    entry = UID_dictionary.get(uid)
    keyword = entry[4] if entry and entry[4] else "PrivateStorage_" + re.sub(r"\W", "_", uid)
    register_uid(uid, keyword, StorageServiceClass)
