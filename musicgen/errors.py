"""Typed errors: everything a user can get wrong raises one of these, never an assert."""

import math


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


def check_number(name: str, value, kind=float):
    """`value` as a finite float (or an int with kind=int), else InvalidParameterError.
    Booleans, strings and None are refused: a form or an API client sent the wrong type."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise InvalidParameterError(f"{name} must be a number (got {value!r}).")
    if kind is int and hasattr(value, "__index__"):  # exact, also beyond 2**53
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameterError(f"{name} must be finite (got {value!r}).")
    if kind is int:
        if number != int(number):
            raise InvalidParameterError(f"{name} must be a whole number (got {value!r}).")
        return int(number)
    return number
