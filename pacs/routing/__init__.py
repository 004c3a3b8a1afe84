"""Routing and sending: rules in the database, the per-destination outbox, outbound clients.

C-STORE SCU over pooled associations, STOW-RS client, C-FIND and C-MOVE SCU
(issue 19 item 3, issue 18 item 6). The archive builds :class:`Routing` and
doors reach it as ``archive.routing``.
"""
