"""A whole HTML page around a server-rendered body, in the reader's language.

The share PIN form, the "withdrawn" page, error pages and the status page are
written by the server, not by the web app; they share this frame so that each
says its language (``<html lang>``), works on a phone and needs nothing but
inline style (the Content-Security-Policy allows no script on them anyway).
Callers escape what they put in ``body``.
"""

from __future__ import annotations

import html

STYLE = (
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;"
    "margin:2em auto;max-width:40em;padding:0 1em;color:#222}"
    "th{text-align:left;padding-right:2em}input,button{font:inherit;padding:.3em .6em}"
    ".error{color:#a00}nav a{margin-right:1.5em}"
)


def html_page(lang: str, title: str, body: str) -> str:
    """``body`` (already escaped HTML) inside a page titled ``title`` (escaped here)."""
    return (
        f"<!doctype html><html lang='{html.escape(lang, quote=True)}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
