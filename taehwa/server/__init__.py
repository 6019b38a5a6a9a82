"""The server side: the composition root that builds every service once, the doctor and the control tower."""
