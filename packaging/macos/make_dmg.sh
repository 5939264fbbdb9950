#!/usr/bin/env bash
# Build VoxDesk.app with PyInstaller and wrap it in a .dmg (macOS only).
#
#   packaging/macos/make_dmg.sh [--variant lite|full] [--reuse]
#
# Signing: set VOXDESK_CODESIGN_IDENTITY ("Developer ID Application: …") to sign with the
# hardened runtime and packaging/macos/entitlements.plist (microphone access); without
# it the app is ad-hoc signed, which runs locally and in CI but not on other Macs
# without a Gatekeeper override. Notarisation (xcrun notarytool) is left to release CI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

variant=lite reuse=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --variant) variant="$2"; shift 2 ;;
        --reuse) reuse=1; shift ;;
        *) echo "make_dmg.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
python="${PYTHON:-python3}"
[[ -x "$root/.venv/bin/python" && -z "${PYTHON:-}" ]] && python="$root/.venv/bin/python"
version="$("$python" -c 'import importlib.metadata as m; print(m.version("voxdesk"))')"
dist="$root/packaging/dist"
app="$dist/VoxDesk.app"

if [[ $reuse -eq 0 || ! -d "$app" ]]; then
    VOXDESK_BUNDLE="$variant" VOXDESK_VERSION="$version" "$python" -m PyInstaller --noconfirm --clean \
        --log-level WARN --distpath "$dist" --workpath "$root/packaging/build/$variant" "$here/../voxdesk.spec"
fi

identity="${VOXDESK_CODESIGN_IDENTITY:--}"
# A Developer ID signature needs Apple's secure timestamp (notarisation rejects one
# without); an ad-hoc signature ("-") cannot have one.
if [[ $identity == - ]]; then timestamp=--timestamp=none; else timestamp=--timestamp; fi
codesign --force --deep --options runtime "$timestamp" \
    --entitlements "$here/entitlements.plist" --sign "$identity" "$app"
codesign --verify --deep --strict "$app"
/usr/libexec/PlistBuddy -c "Print :NSMicrophoneUsageDescription" "$app/Contents/Info.plist" >/dev/null

suffix=""; [[ $variant == full ]] && suffix="-full"
dmg="$dist/VoxDesk$suffix-$version-macos-$(uname -m).dmg"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
hdiutil create -volname "VoxDesk" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$dmg"
echo "==> $dmg"
