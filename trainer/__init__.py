"""genre-pi trainer: GTZAN-layout data -> cached MFCC features -> CNN -> int8 TFLite bundle + report.

Only ``train``/``export`` import TensorFlow, and only inside functions, so feature-extraction workers
and the pure modules (``split``, ``metrics``) stay light.
"""
