"""Pure DICOM helpers shared by the core and every door (status codes, ...)."""
