"""The two XKB requests behind XkbSetDetectableAutoRepeat, which python-xlib does not wrap."""

from __future__ import annotations

from typing import Any

from Xlib.protocol import rq

_USE_CORE_KBD = 0x0100
_PCF_DETECTABLE_AUTO_REPEAT = 1


class _UseExtension(rq.ReplyRequest):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(0),
        rq.RequestLength(),
        rq.Card16("wanted_major"),
        rq.Card16("wanted_minor"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(),
        rq.Bool("supported"),
        rq.Card16("sequence_number"),
        rq.ReplyLength(),
        rq.Card16("server_major"),
        rq.Card16("server_minor"),
        rq.Pad(20),
    )


class _PerClientFlags(rq.ReplyRequest):
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(21),
        rq.RequestLength(),
        rq.Card16("device_spec"),
        rq.Pad(2),
        rq.Card32("change"),
        rq.Card32("value"),
        rq.Card32("ctrls_to_change"),
        rq.Card32("auto_ctrls"),
        rq.Card32("auto_ctrls_values"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(),
        rq.Card8("device_id"),
        rq.Card16("sequence_number"),
        rq.ReplyLength(),
        rq.Card32("supported"),
        rq.Card32("value"),
        rq.Card32("auto_ctrls"),
        rq.Card32("auto_ctrls_values"),
        rq.Pad(8),
    )


def set_detectable_auto_repeat(display: Any) -> bool:
    """True when the server now sends a held key as presses only (no fake release between them)."""
    ext = display.query_extension("XKEYBOARD")
    if ext is None or not ext.present:
        return False
    opcode = ext.major_opcode
    use = _UseExtension(display=display.display, opcode=opcode, wanted_major=1, wanted_minor=0)
    if not use.supported:
        return False
    flags = _PerClientFlags(
        display=display.display,
        opcode=opcode,
        device_spec=_USE_CORE_KBD,
        change=_PCF_DETECTABLE_AUTO_REPEAT,
        value=_PCF_DETECTABLE_AUTO_REPEAT,
        ctrls_to_change=0,
        auto_ctrls=0,
        auto_ctrls_values=0,
    )
    return bool(flags.value & _PCF_DETECTABLE_AUTO_REPEAT)
