"""PyInstaller runtime hook: make bundled native libraries findable before app code runs.

- PortAudio: sounddevice asks `ctypes.util.find_library("portaudio")`, which on Linux
  consults ldconfig's cache and never the bundle. A system libportaudio2 is preferred
  (it matches the system's ALSA/PulseAudio setup); when there is none, the copy in the
  bundle is used instead of failing with "PortAudio library not found".
- CA certificates: OpenSSL in the bundle was built for another distribution's
  certificate paths; point it at certifi's bundle unless the user set their own.
"""

import ctypes.util
import glob
import os
import sys

_bundle = getattr(sys, "_MEIPASS", os.path.dirname(os.path.abspath(sys.executable)))

if sys.platform.startswith("linux"):
    _original_find_library = ctypes.util.find_library

    def _find_library_with_bundle(name):
        found = _original_find_library(name)
        if found is None and name == "portaudio":
            candidates = sorted(glob.glob(os.path.join(_bundle, "libportaudio.so*")))
            if candidates:
                return candidates[0]
        return found

    ctypes.util.find_library = _find_library_with_bundle

_cafile = os.path.join(_bundle, "certifi", "cacert.pem")
if os.path.isfile(_cafile):
    os.environ.setdefault("SSL_CERT_FILE", _cafile)
