"""The shared engine of layerpeek: registries, manifests, layers. Knows no front end."""
