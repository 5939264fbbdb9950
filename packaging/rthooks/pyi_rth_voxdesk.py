"""PyInstaller runtime hook: make bundled native libraries findable before app code runs.

- PortAudio: sounddevice asks `ctypes.util.find_library("portaudio")`, which on Linux
  consults ldconfig's cache and never the bundle. A system libportaudio2 is preferred
  (it matches the system's ALSA/PulseAudio setup); when there is none, the copy in the
  bundle is used instead of failing with "PortAudio library not found".
- CA certificates: the system trust store comes first (it holds the CAs a company or
  the user added). OpenSSL in the bundle was built for some distribution's certificate
  paths; only when neither they nor the usual Debian/Fedora/SUSE/Alpine files exist is
  it pointed at certifi's bundle. A user's own SSL_CERT_FILE/SSL_CERT_DIR always wins.
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

#: Where distributions keep their CA bundle, for an OpenSSL built with other defaults.
_SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, CentOS
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora/RHEL (extracted)
)


def _system_ca_available() -> bool:
    """True when OpenSSL's default locations hold certificates (or a known system file exists)."""
    import ssl

    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return True
    if paths.capath and os.path.isdir(paths.capath):
        try:
            if any(name.endswith((".0", ".pem", ".crt")) for name in os.listdir(paths.capath)):
                return True
        except OSError:
            pass
    return False


def _configure_ca_certificates() -> None:
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return  # the user's choice
    if sys.platform == "win32":
        return  # Python's ssl reads the Windows certificate store itself
    if _system_ca_available():
        return
    for path in _SYSTEM_CA_FILES:
        if os.path.isfile(path):
            os.environ["SSL_CERT_FILE"] = path  # the system store, at a path OpenSSL does not know
            return
    cafile = os.path.join(_bundle, "certifi", "cacert.pem")
    if os.path.isfile(cafile):
        os.environ["SSL_CERT_FILE"] = cafile  # no system store at all (minimal images, macOS)


_configure_ca_certificates()
