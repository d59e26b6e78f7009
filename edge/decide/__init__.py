"""The decision rule: window probabilities in, the state the house is told out.

One copy, used by the daemon, ``genre-predict --published``, the trainer's evaluation and the bench.
"""
