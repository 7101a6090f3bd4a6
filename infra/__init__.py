"""CDK v2 app of cheka: the Chalice API and functions, DynamoDB tables, the documents bucket, KMS keys.

Every name comes from :class:`chalicelib.core.settings.Settings` and every table from the pynamodb models,
the same definitions the local bootstrap (``chalicelib.local.bootstrap``) creates on the embedded AWS.
"""
