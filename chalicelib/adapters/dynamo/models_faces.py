"""The table of face templates bound to identities (one face, one identity: 一脸多证).

One item per template (``template_id`` = the flow the face passed in), keyed to the identity by its
keyed hash only. A local-engine template holds the face's descriptor sealed with the personal-data key
(biometric data: 128 float32, AES-GCM under a KMS data key); a Rekognition template holds the
collection's face ids instead (the face itself stays in the collection).

Searches keep every template in memory and read only what changed since their last look: the
``by-change`` index (one partition, ``changed`` = epoch milliseconds + template id) returns, in order,
the templates bound or forgotten since then. A forgotten template keeps a tombstone (no descriptor) so
other processes learn it is gone; TTL deletes the tombstone a week later.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.adapters.dynamo.base import TableSpec, Unbound

#: The one partition of the change index.
CHANGE_PARTITION = "all"


class TemplatesByChange(GlobalSecondaryIndex["FaceTemplateModel"]):  # type: ignore[no-untyped-call]
    """Every template in the order it last changed (bound or forgotten)."""

    class Meta:
        index_name = "by-change"
        projection = AllProjection()

    partition = UnicodeAttribute(hash_key=True)
    changed = UnicodeAttribute(range_key=True)  # <epoch ms, 13 digits>#<template id>


class FaceTemplateModel(Unbound):
    """人脸特征模板: one face bound to one identity hash; ``state`` is ``bound`` or ``forgotten``."""

    class Meta(Unbound.Meta):
        table_name = "face-templates"

    template_id = UnicodeAttribute(hash_key=True)
    partition = UnicodeAttribute()
    changed = UnicodeAttribute()
    state = UnicodeAttribute()
    person_hash = UnicodeAttribute()
    engine = UnicodeAttribute()
    data_key = BinaryAttribute(legacy_encoding=False, null=True)  # KMS-wrapped key of descriptor_enc
    descriptor_enc = MapAttribute[str, Any](null=True)  # type: ignore[no-untyped-call] # "descriptor" -> AES-GCM
    face_ids = ListAttribute[str](of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    expires_epoch = NumberAttribute(null=True)

    by_change = TemplatesByChange()


FACE_TABLES: tuple[TableSpec, ...] = (
    TableSpec("face-templates", FaceTemplateModel, ttl_attribute="expires_epoch"),
)
