"""S3 adapters: the documents bucket (``documents.S3DocumentStore``)."""
