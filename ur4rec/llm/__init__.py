"""LLM-generated side texts: item descriptions and user preference summaries (``generate`` command).

* :mod:`ur4rec.llm.prompts`: prompt texts, versions and the per-item/per-user jobs (no leakage);
* :mod:`ur4rec.llm.cache`: the SQLite result cache;
* :mod:`ur4rec.llm.client`: the OpenAI-compatible chat client;
* :mod:`ur4rec.llm.generate`: the command itself (``main(argv)``).
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the generator (see :func:`ur4rec.llm.generate.main`)."""
    from ur4rec.llm.generate import main as _main

    return _main(argv)
