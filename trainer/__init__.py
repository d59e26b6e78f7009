"""genre-pi trainer, laid out in the order data flows.

``data`` (clips, feature cache, run plan, splits, reject-class clips) -> ``augment`` (the simulated room,
window crops, SpecAugment, mixup) -> ``model`` (recipes, Keras training) -> ``export`` (int8 TFLite, parity)
-> ``evaluate`` (scores, metrics, reject class, playlists, decision-rule tuning) -> ``report`` (report.md,
plots, timelines) -> ``runs`` (``train``, ``compare``, ``ablate``) -> ``cli`` (``genre-train``).

Only ``model.train`` and ``export.tflite`` import TensorFlow, and only inside functions, so
``genre-train --help`` and the feature-extraction workers never load it.
"""
