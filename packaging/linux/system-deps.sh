#!/usr/bin/env bash
# System libraries VoxDesk needs on Debian/Ubuntu. Installs them when it can (root,
# or passwordless sudo); otherwise prints the exact command to run and fails.
#   packaging/linux/system-deps.sh run    # what the app needs
#   packaging/linux/system-deps.sh test   # + what the test suite and packaging need
set -euo pipefail
mode="${1:-run}"
run_pkgs=(libportaudio2 libasound2-plugins espeak-ng libxcb-cursor0 libegl1 libgl1 libxkbcommon0
          libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
          libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 build-essential cmake
          python3-venv)
test_pkgs=(pulseaudio alsa-utils sox xvfb xauth patchelf binutils desktop-file-utils dpkg-dev pocketsphinx-testdata
           xdotool trayer dbus-daemon)
pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

command -v dpkg-query >/dev/null || { echo "Not a Debian/Ubuntu system: install PortAudio, espeak-ng and Qt's xcb libraries with your package manager." >&2; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else
  echo "VoxDesk needs these system packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
