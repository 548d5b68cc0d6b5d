"""Model-serving adapters behind processors.ports.IntentSentimentModel."""
