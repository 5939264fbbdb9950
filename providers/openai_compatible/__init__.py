"""Providers for any OpenAI-compatible server: chat (``llm``), transcription (``stt``), speech (``tts``).

All three talk to one kind of endpoint and share its configuration in ``endpoint``:
the base URL and its plain-http rule, the API key (from the keychain or environment,
never from settings), and the connect/read timeouts.
"""
