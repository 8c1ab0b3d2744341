"""HTTP blueprints, one per concern: speech, info, metrics and the web page."""
