"""The method's mathematics: objective terms, the distance D, curvature products, the Child's
α̂-gradient, decoupled optimisation and the architects (docs/METHOD.md). Nothing here reads a config
or runs a loop; ``run/`` builds these from the config."""
