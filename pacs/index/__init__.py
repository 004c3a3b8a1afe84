"""The SQL index of the archive: models, engine set-up and migrations."""
