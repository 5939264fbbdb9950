"""The voice engine: the session façade, listening, speaking, turns, and their events."""
