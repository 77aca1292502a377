"""Typed errors: everything a user can get wrong raises one of these, never an assert."""


class MusicgenError(Exception):
    """Base class for errors whose message is meant for the user."""


class InvalidMidiError(MusicgenError):
    """The input is not a usable MIDI file (not MIDI, truncated, empty, no notes, too big...)."""


class InvalidParameterError(MusicgenError, ValueError):
    """A generation or training parameter is out of range or of the wrong type."""


class CheckpointError(MusicgenError):
    """A checkpoint is missing, corrupt, or does not match its tokenizer."""


class SoundfontNotFoundError(MusicgenError):
    """No General MIDI soundfont was found for FluidSynth."""


class SynthUnavailableError(MusicgenError):
    """FluidSynth (the library or its Python binding) is not installed."""
