"""Echo cancellers: remove the assistant's own voice from the microphone."""
