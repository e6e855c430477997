"""On-disk image index: storage, building and approximate nearest-neighbour search."""
