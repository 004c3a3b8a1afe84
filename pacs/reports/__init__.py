"""The reporting domain (issue 17): report lifecycle, templates, signing, outputs, delivery.

The service (:class:`pacs.reports.service.Reports`) is reached through the archive facade
as ``archive.reports``; importing it here would make ``pacs.archive`` and this package
import each other. Doors import the errors and :class:`~pacs.reports.service.ReportText`.
"""
