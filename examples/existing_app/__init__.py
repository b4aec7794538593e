"""A small "existing" Flask app that adds LLM streaming with a few lines."""
