"""musicgen: continue a piano performance with a Transformer trained on MAESTRO."""

__version__ = "0.1.0"
