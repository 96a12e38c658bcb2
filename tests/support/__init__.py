"""What the tests are built from: the fake index, packages, processes, clients, one wait, the cache."""
