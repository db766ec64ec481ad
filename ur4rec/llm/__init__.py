"""LLM-generated side texts: item descriptions and user preference summaries (``generate`` command).

* :mod:`ur4rec.llm.prompts`: prompt texts, versions and the per-item/per-user jobs (no leakage);
* :mod:`ur4rec.llm.cache`: the SQLite result cache;
* :mod:`ur4rec.llm.client`: the OpenAI-compatible chat client;
* :mod:`ur4rec.llm.generate`: the command itself (``main(argv)``).
"""
