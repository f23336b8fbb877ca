"""Models shared by the families: students' shapes, vocabulary trimming, packaged and GGUF models,
LLM engines, teachers, compression.
"""
