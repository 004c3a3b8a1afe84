"""The administration door: HTTP API for administrators."""
