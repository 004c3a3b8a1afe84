"""The hospital workflow domain: HIS patients, imaging orders, their steps, study matching.

Doors (the HL7 door, the order API) describe what the HIS said with the plain
commands of :mod:`pacs.workflow.commands`; :class:`pacs.workflow.service.Workflow`
applies them to the index. The archive facade exposes it as ``archive.workflow``.
This package's top level exports only the commands: the service is reached through
the facade (importing it here would make ``pacs.archive`` and this package import
each other).
"""

from pacs.workflow.commands import (
    MergePatients,
    MessageRecord,
    OrderCommand,
    OrderControl,
    PatientData,
    StepData,
    UpdatePatient,
)

__all__ = [
    "MergePatients",
    "MessageRecord",
    "OrderCommand",
    "OrderControl",
    "PatientData",
    "StepData",
    "UpdatePatient",
]
