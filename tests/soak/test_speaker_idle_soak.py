"""Soak: 20 replies with 20 s idle gaps on the PulseAudio devices, 0 false "speaker lost".

The issue's bar, the long way (~7.5 min): PulseAudio's default suspend-on-idle timeout
(5 s), and the speaker parked 12 s after each reply (the app parks at 15 s; a little
sooner here so the sink is surely suspended before the next reply, as after any longer
pause), then reopened while the engine's worker threads are busy. See
tests/integration/test_speaker_idle.py for the short version.
"""

from __future__ import annotations

import pytest

from tests.integration.test_speaker_idle import describe, play_replies, pulse, suspend_on_idle

__all__ = ["pulse"]

REPLIES = 20
GAP_S = 20.0

pytestmark = [pytest.mark.audio, pytest.mark.slow, pytest.mark.soak, pytest.mark.timeout(900)]


async def test_twenty_replies_after_20_s_idle_gaps_raise_no_speaker_lost(pulse: dict[str, str]) -> None:
    with suspend_on_idle(timeout_s=5):
        run = await play_replies("default", replies=REPLIES, gap_s=GAP_S, idle_close_s=12.0)
    print(describe(run))
    assert run.replies == REPLIES
    assert run.suspended_gaps >= REPLIES - 2, "PulseAudio did not suspend the idle sink"
    assert run.lost == [] and run.switched == []
    assert len(run.first_sample_s) == REPLIES
