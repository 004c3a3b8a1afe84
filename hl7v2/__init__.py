"""The HL7 v2 door: an MLLP listener for the HIS's patient updates and imaging orders.

Named ``hl7v2`` rather than ``hl7`` because the library it is built on (python-hl7,
PyPI ``hl7``) is imported as ``hl7``: a top-level package of ours by that name would
shadow it. Like every door it translates its protocol into facade calls
(``archive.workflow``) and the answers back into ACKs; it never touches SQL.
"""
