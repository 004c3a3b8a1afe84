"""The DICOM network door: a pynetdicom server translating DIMSE into archive calls."""
