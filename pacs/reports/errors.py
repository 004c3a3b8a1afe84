"""What the reporting domain refuses, as exceptions the doors map to 4xx answers."""

from __future__ import annotations


class ReportError(Exception):
    """Base of the reporting domain's refusals."""


class ReportNotFound(ReportError):
    """No such report (or template, phrase, study)."""


class ReportConflict(ReportError):
    """The report is not in a state that allows this (a signed report edited, signed twice)."""


class InvalidReport(ReportError):
    """The request is malformed (a key image outside the study, text too long)."""


class SigningError(ReportError):
    """The signature could not be made: no certificate, wrong passphrase, token not found."""
