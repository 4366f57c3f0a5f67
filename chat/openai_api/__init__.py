"""An OpenAI-compatible API (`/v1/`) on the chat's queue, workers and per-person limits, with personal API keys.

    keys.py       create, hash and check personal API keys (Authorization: Bearer)
    params.py     the one validation of a request body (no Django)
    reasoning.py  reasoning text (<think>...</think>) apart from the answer, as llama-server does (no Django)
    views.py      /v1/models, /v1/chat/completions: parse, call the worker manager, answer or stream
    account_views.py   the account page where people create, name and revoke their keys
"""
