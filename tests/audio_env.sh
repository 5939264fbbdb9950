#!/usr/bin/env bash
# Virtual audio devices for tests: a private PulseAudio daemon with null sinks,
# reachable by PortAudio through ALSA's pulse plugin.
#
#   eval "$(tests/audio_env.sh start)"   # idempotent; prints the env to export
#   tests/audio_env.sh env               # print the env again (daemon must be up)
#   tests/audio_env.sh status            # exit 0 if the daemon answers
#   tests/audio_env.sh stop              # idempotent
#
# What it builds (in $VOXDESK_AUDIO_DIR, default /tmp/voxdesk-audio-$UID):
#   PulseAudio sinks  mic, speaker, fallback (the default sink)
#   ALSA PCMs         vox_mic     = pulse source mic.monitor (what tests "say" into `mic`)
#                     vox_speaker = pulse sink speaker
#                     vox_speaker_monitor = pulse source speaker.monitor (tests listen to it)
#                     default     = pulse default source/sink (fallback / fallback.monitor)
# PortAudio lists each ALSA PCM above as a device of host API "ALSA", so choosing a
# device by name means choosing "vox_mic" / "vox_speaker"; unloading the `speaker`
# sink makes vox_speaker fail like an unplugged USB headset, and "default" is what a
# stream falls back to.
#
# Nothing global is touched: the ALSA config is a file of ours named by
# ALSA_CONFIG_PATH, and clients find the daemon by PULSE_SERVER.
#
# Root: pulseaudio warns when run as root outside --system mode but works in per-user
# mode as long as it has a writable runtime dir (XDG_RUNTIME_DIR) and a HOME; we give
# it both inside our dir, load no default.pa (-n) and only our config (-F), and allow
# anonymous clients on our private socket.
set -euo pipefail

DIR="${VOXDESK_AUDIO_DIR:-/tmp/voxdesk-audio-$(id -u)}"
SOCKET="$DIR/native"
ASOUNDRC="$DIR/asoundrc"
PA_CONF="$DIR/daemon.pa"

print_env() {
    echo "export PULSE_SERVER=unix:$SOCKET"
    echo "export ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:$ASOUNDRC"
    echo "export VOXDESK_AUDIO_DIR=$DIR"
}

daemon_up() {
    PULSE_SERVER="unix:$SOCKET" timeout 5 pactl info >/dev/null 2>&1
}

write_configs() {
    mkdir -p "$DIR/runtime" "$DIR/home"
    chmod 700 "$DIR/runtime"
    cat >"$PA_CONF" <<EOF
load-module module-native-protocol-unix socket=$SOCKET auth-anonymous=1
load-module module-null-sink sink_name=fallback sink_properties=device.description=Fallback
load-module module-null-sink sink_name=mic rate=48000 channels=2 sink_properties=device.description=VoxMic
load-module module-null-sink sink_name=speaker rate=44100 channels=2 sink_properties=device.description=VoxSpeaker
set-default-sink fallback
set-default-source fallback.monitor
EOF
    cat >"$ASOUNDRC" <<EOF
pcm.!default { type pulse hint { show on description "PulseAudio default" } }
ctl.!default { type pulse }
pcm.vox_mic { type pulse device "mic.monitor" hint { show on description "VoxDesk virtual microphone" } }
pcm.vox_speaker { type pulse device "speaker" hint { show on description "VoxDesk virtual speaker" } }
pcm.vox_speaker_monitor { type pulse device "speaker.monitor" hint { show on description "What vox_speaker plays" } }
EOF
}

start() {
    command -v pulseaudio >/dev/null || { echo "pulseaudio is not installed" >&2; exit 3; }
    write_configs
    if ! daemon_up; then
        rm -f "$SOCKET"
        XDG_RUNTIME_DIR="$DIR/runtime" HOME="$DIR/home" \
            pulseaudio --daemonize=yes --exit-idle-time=-1 --system=false -n -F "$PA_CONF" \
            --log-target=file:"$DIR/pulse.log" --disallow-exit=no >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            daemon_up && break
            sleep 0.1
        done
        daemon_up || { echo "PulseAudio did not start; see $DIR/pulse.log" >&2; exit 4; }
    fi
    print_env
}

stop() {
    if daemon_up; then
        PULSE_SERVER="unix:$SOCKET" pactl exit >/dev/null 2>&1 || true
        for _ in $(seq 1 30); do
            daemon_up || break
            sleep 0.1
        done
    fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    status) daemon_up ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
