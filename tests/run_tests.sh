#!/usr/bin/env bash
# The whole suite, with the virtual audio devices up for the tests that need them.
set -uo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
if out=$(bash tests/audio_env.sh start 2>/tmp/voxdesk-audio-start.log); then
  eval "$out"
else
  echo "tests: PulseAudio could not start (see /tmp/voxdesk-audio-start.log); audio tests will skip" >&2
fi
trap 'bash tests/audio_env.sh stop >/dev/null 2>&1 || true' EXIT
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
