"""The NER family: its objectives, the teacher caches, scoring, teacher fine-tuning, student
distillation, evaluation.
"""
