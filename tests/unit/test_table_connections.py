"""Every table's connection parses the DynamoDB service model once per process, not once per table."""

from __future__ import annotations

from chalicelib.adapters.dynamo.models import TABLES, bind
from chalicelib.core.config import Settings


def test_every_tables_connection_shares_one_botocore_data_loader() -> None:
    bind(Settings(stage="local", aws_endpoint_url="http://127.0.0.1:1"))
    loaders = {
        id(spec.model._get_connection().connection.session.get_component("data_loader"))
        for spec in TABLES[:5]
    }
    assert len(loaders) == 1
