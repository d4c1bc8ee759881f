"""Where events go: Kafka topics, and outbound webhooks through a durable Kafka queue."""
