"""`voxdesk echo-check`: the Settings → Audio echo check from the command line.

Exit 0 when talking over VoxDesk will work on these devices (or no echo reaches the
microphone), 1 when the echo is not removed well enough, 3 when a device or the
canceller could not be used.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from typing import TextIO

from app.audio.capture import open_device_source
from app.audio.echo_check import EchoCheckResult, run_echo_check
from app.audio.playback import open_device_sink
from app.audio.streams import AudioSink, AudioSource
from app.commands.exit_codes import EXIT_FAIL, EXIT_MISSING, EXIT_OK
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import EchoCanceller
from app.plugin.registry import get_registry
from app.store.settings import Settings


def echo_check_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    stage = settings.echo
    canceller = get_registry().create("echo", stage.provider, stage.options)  # a bad option: exit 2
    if not isinstance(canceller, EchoCanceller):
        raise VoiceError("echo", ErrorCode.INVALID_CONFIG, f"“{stage.provider}” is no echo canceller")
    a = settings.audio
    sink = open_device_sink(args.speaker or a.output_device, None if args.speaker else a.output_host_api)
    source = open_device_source(args.mic or a.input_device, None if args.mic else a.input_host_api)
    result = asyncio.run(_check(sink, source, canceller))
    if args.json:
        json.dump({**dataclasses.asdict(result), "canceller": stage.provider}, out, indent=2)
        out.write("\n")
    else:
        out.write(f"{result.summary()}\n")
    if not result.measured:
        return EXIT_MISSING
    return EXIT_OK if result.ok else EXIT_FAIL


async def _check(sink: AudioSink, source: AudioSource, canceller: EchoCanceller) -> EchoCheckResult:
    try:
        return await run_echo_check(sink, source, canceller)
    finally:
        await canceller.aclose()
