"""What a provider plugs into: the provider API, the registry, errors and resilience."""
