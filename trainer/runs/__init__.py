"""The commands' orchestration: ``train`` (ship a bundle), ``compare`` (cross-validation), ``ablate``."""
