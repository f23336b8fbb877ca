"""The NER report: trade-off table, plots, HTML page, model cards."""
