"""Wyoming providers: speech servers people already run for Home Assistant.

A Wyoming server (wyoming-faster-whisper, wyoming-piper, …) speaks JSON-lines events
over plain TCP. ``client`` is the protocol side (connect, describe, transcribe,
synthesize, deadlines, faults as ``VoiceError``); ``stt`` and ``tts`` are the VoxDesk
providers on top of it; ``config`` holds the settings they share. The ``wyoming``
library is imported only when a provider is created, so listing providers stays light.
"""
