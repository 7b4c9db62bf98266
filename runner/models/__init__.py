"""Language models: `llm.py` (litellm behind one client: aliases, structured output, repair, retries, cache,
cost) and `local_model.py` (the embedded llama.cpp model for running with no key and no network)."""
