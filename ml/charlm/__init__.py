"""charlm: character-level language models over a list of names (makemore-style)."""

__version__ = "0.1.0"
