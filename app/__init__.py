"""The composition root: the only package that imports every door.

It builds the HTTP application (``app.http``), runs ``pacs serve`` with its
roles (``app.serve``) and wires the ``pacs`` command line (``app.cli``). The
core (``pacs``) and the doors never import it.
"""
