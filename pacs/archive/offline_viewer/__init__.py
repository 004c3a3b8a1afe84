"""The small offline viewer that goes onto DICOMDIR media (TT 54/2017 criterion 74: CD/DVD).

The media's root holds, beside ``DICOMDIR`` and its file tree, what IHE PDI
asks of a disc a person opens in a browser: ``INDEX.HTM`` and ``README.TXT``,
the viewer's own files in ``VIEWER/`` (PDI's "other content", never inside the
DICOM folders), every name in ISO 9660 8.3 form. ``INDEX.HTM`` opens from the
file system (``file://``) in Chrome, Edge or Firefox with no server and no
network: it shows each study (patient, date, series, reports), scrolls through
a series' images and changes the window with the mouse.

Why the data travels as scripts: a page opened from ``file://`` may load a
``<script src>`` beside it, but ``fetch()``/XHR of ``file://`` URLs is refused
(Chromium) or restricted (Firefox), ES modules are refused too (CORS), and an
``<input type=file>`` would make the reader pick the folder first. So the export
writes ``VIEWER/DATA/INDEX.JS`` (``window.PACS_MEDIA = {...}``: the studies,
series, images, reports and the vi/en labels from the ``media`` catalogue) and
one script per frame that hands its pixels to ``PACS_MEDIA_FRAME`` (see
:mod:`.frames`). JSON is written ASCII-escaped, so names keep their diacritics
whatever encoding the browser guesses; the viewer sets every text with
``textContent`` (names and report text are data, never markup).

The viewer itself (``static/``) is plain JavaScript and CSS written for this
repository, about 20 KB, no library, no build step, nothing downloaded.
"""

from pacs.archive.offline_viewer.media import OfflineViewer

__all__ = ["OfflineViewer"]
