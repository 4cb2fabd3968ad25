"""The recommendation core, below the engine and above models/ and online/: the service (filters,
top-n, reasons), the aligned-model adapter, the set of served models, training and saved models."""
