"""The FHIR R4 door (mounted at ``/fhir``) and the EMR's image display launch.

Named ``ehr`` rather than ``fhir``: ``fhir.resources`` (the model library this
door is built on) lives in the ``fhir`` namespace package, which a top-level
``fhir`` package of ours would shadow. Models come from ``fhir.resources.R4B``:
the library's R4-family models (R4B differs from R4 4.0.1 in none of the
elements this door writes), and responses declare ``fhirVersion`` 4.0.1.
Like every door, it translates: FHIR search parameters become a DICOM
identifier for the archive's one matching engine (the same matching as QIDO
and C-FIND), and matches become FHIR resources.
"""
