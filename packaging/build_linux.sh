#!/usr/bin/env bash
# Build VoxDesk for Linux: PyInstaller one-folder bundle, a tarball and a .deb.
#
#   packaging/build_linux.sh [--variant lite|full] [--reuse] [--no-tarball] [--no-deb]
#
#   --variant  lite (default): no models, they are fetched on first run (`voxdesk models fetch`)
#              full: also ships whisper tiny.en, Piper en_US-joe-medium and the embedded
#              chat model Qwen2.5-Coder 0.5B Instruct (Apache-2.0; see NOTICE)
#   --reuse    keep an existing packaging/dist/<name> bundle (CI builds it once per run)
#
# Outputs (packaging/dist/):
#   voxdesk/ or voxdesk-full/                  the bundle (run ./voxdesk --self-test)
#   voxdesk[-full]-VERSION-linux-ARCH.tar.gz   the bundle as a tarball
#   voxdesk[-full]_VERSION_DEBARCH.deb         /opt/voxdesk + /usr/bin/voxdesk + desktop entry + icon
#
# Environment: PYTHON (default: .venv/bin/python, else python3) must have the `all`
# and `package` extras installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

variant=lite reuse=0 tarball=1 deb=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --variant) variant="$2"; shift 2 ;;
        --variant=*) variant="${1#*=}"; shift ;;
        --reuse) reuse=1; shift ;;
        --no-tarball) tarball=0; shift ;;
        --no-deb) deb=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "build_linux.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$variant" in
    lite) name=voxdesk ;;
    full) name=voxdesk-full ;;
    *) echo "build_linux.sh: --variant must be lite or full, not '$variant'" >&2; exit 2 ;;
esac

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
if ! "$python" -c "import PyInstaller" 2>/dev/null; then
    echo "build_linux.sh: PyInstaller is not installed for $python — run: $python -m pip install -e '.[all,package]'" >&2
    exit 2
fi

version="$("$python" -c 'import importlib.metadata as m; print(m.version("voxdesk"))')"
arch="$(uname -m)"
debarch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
dist="$root/packaging/dist"
bundle="$dist/$name"
mkdir -p "$dist"

# -- 1. the bundle ---------------------------------------------------------------------
if [[ $reuse -eq 1 && -x "$bundle/voxdesk" ]]; then
    echo "==> reusing $bundle"
else
    echo "==> building the $variant bundle with PyInstaller"
    start=$(date +%s)
    VOXDESK_BUNDLE="$variant" "$python" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$dist" --workpath "$root/packaging/build/$variant" "$here/voxdesk.spec"
    echo "==> bundle built in $(( $(date +%s) - start )) s"
fi
# The spec clears it already; this also covers a reused or hand-made bundle.
"$python" "$here/elf_fixups.py" "$bundle"
echo "==> bundle size: $(du -sh "$bundle" | cut -f1) ($bundle)"

# -- 2. the tarball --------------------------------------------------------------------
if [[ $tarball -eq 1 ]]; then
    tgz="$dist/$name-$version-linux-$arch.tar.gz"
    echo "==> $tgz"
    tar -C "$dist" -cf - "$name" | gzip -6 > "$tgz.tmp" && mv "$tgz.tmp" "$tgz"
fi

# -- 3. the .deb -----------------------------------------------------------------------
if [[ $deb -eq 1 ]]; then
    if ! command -v dpkg-deb >/dev/null; then
        echo "build_linux.sh: dpkg-deb not found — skipping the .deb (install dpkg)" >&2
        exit 0
    fi
    desktop="$root/resources/voxdesk.desktop"
    [[ -f "$desktop" ]] || desktop="$here/linux/voxdesk.desktop"
    icon="$root/resources/icons/voxdesk.svg"
    [[ -f "$icon" ]] || icon="$here/linux/voxdesk.svg"

    stage="$root/packaging/build/deb-$variant"
    rm -rf "$stage"
    mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" \
             "$stage/usr/share/icons/hicolor/scalable/apps" "$stage/usr/share/doc/$name"
    cp -a "$bundle" "$stage/opt/voxdesk"
    install -m 0755 "$here/linux/voxdesk-launcher.sh" "$stage/usr/bin/voxdesk"
    install -m 0644 "$desktop" "$stage/usr/share/applications/voxdesk.desktop"
    install -m 0644 "$icon" "$stage/usr/share/icons/hicolor/scalable/apps/voxdesk.svg"
    install -m 0644 "$here/linux/copyright" "$stage/usr/share/doc/$name/copyright"
    install -m 0644 "$root/NOTICE" "$stage/usr/share/doc/$name/NOTICE"

    if [[ $variant == full ]]; then
        relation=$'Provides: voxdesk\nConflicts: voxdesk\nReplaces: voxdesk'
        summary="desktop voice assistant that works offline (with models)"
    else
        relation=$'Conflicts: voxdesk-full\nReplaces: voxdesk-full'
        summary="desktop voice assistant that works offline"
    fi
    # The oldest glibc that can run the bundle: the highest GLIBC_x.y version any of its ELF
    # files (executable, libraries, extension modules) references — set by the build machine.
    glibc="$("$python" "$here/elf_fixups.py" --glibc-requirement "$bundle")" || {
        echo "build_linux.sh: could not read the bundle's glibc requirement (objdump/readelf from binutils)" >&2
        exit 1
    }
    if [[ ! $glibc =~ ^[0-9]+(\.[0-9]+)+$ ]]; then
        echo "build_linux.sh: no GLIBC_x.y version found in $bundle — refusing to build a .deb without libc6 (>= …)" >&2
        exit 1
    fi
    echo "==> the bundle needs glibc >= $glibc"
    # Qt's wayland platform plugin links the Wayland client libraries; they are not bundled
    # (the session's own must be used), so depend on them unless a bundle carries them.
    wayland=""
    for pair in libwayland-client.so.0:libwayland-client0 libwayland-cursor.so.0:libwayland-cursor0 \
                libwayland-egl.so.1:libwayland-egl1; do
        if [[ -z "$(find "$bundle" -name "${pair%%:*}" -print -quit)" ]]; then
            wayland+=", ${pair#*:}"
        fi
    done
    installed_kb="$(du -sk "$stage" | cut -f1)"
    # Qt >= 6.5's xcb platform plugin needs libxcb-cursor0; PortAudio needs ALSA (the
    # bundle uses the system libasound so ALSA's PulseAudio/PipeWire plugins match).
    # keyring stores API keys through the Secret Service (gnome-keyring, KeePassXC) or
    # KWallet's daemon (kwallet6 on newer, libkf5wallet-bin on older releases).
    cat > "$stage/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $debarch
Maintainer: VoxDesk developers <voxdesk@users.noreply.github.com>
Installed-Size: $installed_kb
Section: sound
Priority: optional
Depends: libc6 (>= $glibc), libportaudio2, libasound2 | libasound2t64, libxcb-cursor0, libxkbcommon-x11-0, libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xfixes0, libxcb-xkb1, libx11-xcb1, libegl1, libgl1, libfontconfig1, libdbus-1-3, libglib2.0-0 | libglib2.0-0t64$wayland
Recommends: pulseaudio | pipewire-pulse, gnome-keyring | kwallet6 | libkf5wallet-bin | keepassxc
$relation
Homepage: https://github.com/voxdesk/voxdesk
Description: $summary
 VoxDesk listens to the microphone, transcribes speech locally
 (faster-whisper), answers with local skills or a llama.cpp model, and
 speaks the reply with Piper. Any stage can be switched to an
 OpenAI-compatible service in Settings.
EOF
    install -m 0755 "$here/linux/postinst" "$stage/DEBIAN/postinst"
    install -m 0755 "$here/linux/postinst" "$stage/DEBIAN/postrm"
    # md5sums of every installed file (dpkg --verify, debsums), paths relative to /.
    (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
        | xargs -0 -r md5sum) > "$stage/DEBIAN/md5sums"
    chmod 0644 "$stage/DEBIAN/md5sums"

    debfile="$dist/${name}_${version}_${debarch}.deb"
    echo "==> $debfile"
    # gzip, not xz/zstd: fast on small CI machines and readable by every dpkg still in use.
    dpkg-deb --root-owner-group -Zgzip -z6 --build "$stage" "$debfile" >/dev/null
    rm -rf "$stage"
fi
echo "==> done"
