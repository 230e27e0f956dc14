"""tickcast: live crypto trades -> Kafka -> Spark -> Delta -> forecasts (shared core)."""

__version__ = "0.1.0"
