"""Collecting plant data: OPC UA, MQTT, Modbus TCP and drop-folder connectors, each writing through a durable
store-and-forward queue into the historian (see `service.py` for how they are managed and run)."""
