"""``translator devices``: the audio inputs and outputs by name, the defaults starred."""

from __future__ import annotations

from translator.audio.duplex import DESCRIPTIONS, resolve
from translator.config import AudioSettings
from translator.errors import DeviceError


def device_table(audio: AudioSettings) -> list[str]:
    """The lines ``translator devices`` prints: inputs, then outputs, how to choose one, and the
    duplex mode ``translator run`` would use on the chosen output."""
    from translator.audio.lookup import find_device  # noqa: PLC0415 - PortAudio loads on first use
    from translator.audio.portaudio import list_devices  # noqa: PLC0415

    devices = list_devices()
    lines: list[str] = []
    for kind in ("input", "output"):
        found = [d for d in devices if d.has(kind)]
        try:
            default = find_device("", kind).index
        except DeviceError:
            default = None
        lines.append(f"{kind}s:")
        if not found:
            lines.append("  (none)")
        for d in found:
            mark = "*" if d.index == default else " "
            channels = d.max_input_channels if kind == "input" else d.max_output_channels
            lines.append(f"  {mark} {d.name}  [{d.index}, {d.host_api}, {channels} ch, {d.default_samplerate:g} Hz]")
    lines.append("* = default. --input/--output take a name or a part of one (the index shifts when devices change).")
    try:
        output = find_device(audio.output, "output").name
    except DeviceError:
        return lines
    resolved = resolve(audio.duplex, output)
    lines.append(f"duplex on {output!r}: {resolved.mode} ({DESCRIPTIONS[resolved.mode]}; audio.duplex = {audio.duplex})")
    if resolved.notice is not None:
        lines.append(resolved.notice)
    return lines
