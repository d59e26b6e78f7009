"""Scoring models: clip scores, metrics, the reject class's false-genre rate, playlists and decision-rule tuning."""
