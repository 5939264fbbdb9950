"""Stand-in for PyAV inside the VoxDesk bundle.

faster-whisper imports `av` at module level, but only uses it to decode audio
*files*; VoxDesk always hands it decoded 16 kHz samples. The real PyAV wheel brings
~100 MB of FFmpeg, x265 and AV1 encoders, a quarter of the bundle, for nothing. If a
code path ever does try to decode a file through PyAV, it gets a clear error.
"""

__version__ = "not bundled"


def __getattr__(name: str) -> object:
    if name.startswith("__"):  # introspection (hasattr, inspect) must see a plain module
        raise AttributeError(name)
    raise AttributeError(
        f"av.{name}: PyAV (audio file decoding) is not included in the VoxDesk bundle — "
        "pass decoded samples instead"
    )
