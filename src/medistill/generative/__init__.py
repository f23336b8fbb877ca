"""Generative taggers in the NER comparison: text format, taggers, their objective, silver
labels."""
