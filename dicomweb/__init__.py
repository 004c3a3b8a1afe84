"""The DICOMweb door (PS3.18): QIDO-RS, WADO-RS, WADO-URI and STOW-RS routers."""
