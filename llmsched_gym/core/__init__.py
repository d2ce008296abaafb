"""The simulation engine: requests, plans, the KV block pool and the iteration loop."""
