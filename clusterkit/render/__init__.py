"""Pure renderers: a ``ClusterSpec`` as the file a runtime's tool reads (compose; next, a swarm stack)."""
