"""The seq2seq family: summary and exercise pairs, BERT2BERT models, prompted LLM teachers,
distillation routes, scoring, report, job graph.
"""
