"""Replay: data sets served as live plant traffic (a real OPC UA server, MQTT publishing, or straight into the
historian) at real or accelerated speed, for the demo, for tests and for benchmarks."""
