"""One matching engine for C-FIND and QIDO-RS (PS3.4 C.2.2.2), compiled to SQL.

Both doors turn their request into a pydicom ``Dataset`` identifier (values
are matching keys, empty elements are return keys) and call
:func:`search`; the same keys therefore match the same rows through either
door, which a table-driven test proves.
"""

from pacs.query.engine import SearchResult, search
from pacs.query.keys import Level, QueryError

__all__ = ["Level", "QueryError", "SearchResult", "search"]
