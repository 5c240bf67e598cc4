"""annotrain: turn human annotations into trained NLP and Visual NER models."""

__version__ = "0.1.0"
