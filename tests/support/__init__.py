"""What the tests are built from: fake index, packages, processes, clients, one wait, cache, memory, warm."""
