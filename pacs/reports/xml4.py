"""QĐ 130/QĐ-BYT table 4 (XML4, "chi tiết dịch vụ cận lâm sàng") for one signed report.

The HIS assembles the insurance claim; the PACS gives it, per reported service, the
fields only radiology knows: the service code (the order's procedure code), the
description (findings), the conclusion, the result time (``yyyymmddHHMM``, local time)
and the signer's health-professional code. ``MA_LK``, the HIS's link code of the
treatment, is the order's placer number (the HIS's own order number) when the study was
matched to an order, else empty for the HIS to fill.
"""

from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree

from pacs.index.reports_models import Report
from pacs.workflow.service import OrderView


def xml4(report: Report, order: OrderView | None, signed_local: datetime) -> str:
    """The CHI_TIET_CLS element (UTF-8 XML text) of ``report``."""
    root = ElementTree.Element("CHI_TIET_CLS")
    fields = [
        ("MA_LK", order.placer_number if order else ""),
        ("STT", "1"),
        ("MA_DICH_VU", order.procedure_code if order else ""),
        ("MA_CHI_SO", ""),
        ("TEN_CHI_SO", order.procedure_description if order else ""),
        ("MO_TA", report.findings),
        ("KET_LUAN", report.conclusion),
        ("NGAY_KQ", signed_local.strftime("%Y%m%d%H%M")),
        ("MA_BS_DOC_KQ", report.signer_code),
    ]
    for name, value in fields:
        ElementTree.SubElement(root, name).text = value
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, "unicode")
