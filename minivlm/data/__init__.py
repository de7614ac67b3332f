"""Data for minivlm: synthetic diagnostic tasks, parquet storage, streaming, real-data adapters.

Submodules: `tasks` (generators and their registry), `baselines` (chance and blind accuracy),
`storage` (parquet sets via `datasets`), `streaming` (sharded IterableDataset), `adapters`
(Hugging Face VLM datasets), `build` and `bench` (commands), `collate` (batches for the model).
"""
