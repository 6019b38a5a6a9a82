"""What every layer shares: errors, settings, times, names, YAML with lines, process lifetimes, loopback."""
