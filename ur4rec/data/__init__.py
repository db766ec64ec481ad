"""Data: readers, download, preprocessing, datasets and the DataModule (``ur4rec.data.datamodule``)."""
