"""The PACS core and its DICOM network door."""

__version__ = "0.1.0"
