"""Clips and what is known of them: discovery, the feature cache, artists, splits, the run plan, reject-class clips."""
