"""Data: readers (one per layout), download, pure preprocessing, datasets and collate. Imports nothing above it."""
