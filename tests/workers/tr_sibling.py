"""A module next to tr_worker.py: a script worker imports it by its bare name."""

VALUE = "tr_sibling"
