"""What layerpeek learnt about immutable content, kept by digest: ``interface`` (the contract
every backend keeps, ``key_for`` and the choice of backend), ``sqlite`` (the embedded
default) and ``redis_store`` (one cache shared by a deployment)."""
