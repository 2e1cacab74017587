"""What operators look at: metric totals, freshness, health, the stats report, Prometheus and
`verify`. Recording the metrics is core (`dashcache.metrics`); this package reads them out."""
