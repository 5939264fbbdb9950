"""Audio in and out: device and file sources and sinks, and the stream contract they share."""
