"""The city's twin: the city office's own model (districts, industrial complexes, substations, the data centre) in
the plant-file format, every company's sites on one offline map as far as each company shares them, cross-company
figures released only when enough companies contribute (k-anonymity, differencing refused, optional differential
privacy), the headquarters' view of AI across the cluster with compute quotas, and a printable report."""
