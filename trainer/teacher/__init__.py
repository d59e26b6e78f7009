"""The pretrained tagger that teaches the student in training (musicnn, MSD): it never runs on the Pi."""
