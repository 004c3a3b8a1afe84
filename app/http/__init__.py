"""The HTTP application: health, status page, and the DICOMweb and viewer routers."""
