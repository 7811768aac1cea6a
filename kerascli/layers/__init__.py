"""Built-in layers, one family per module; the registry (kerascli.registry) imports each when a config names it."""
