"""The audit trail: append-only, hash-chained records of every access to patient data."""

from pacs.audit.trail import AuditTrail, ChainBreak

__all__ = ["AuditTrail", "ChainBreak"]
