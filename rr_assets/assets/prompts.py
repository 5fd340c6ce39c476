"""The prompt variant's files, as an asset: its data version is the hash of the folder.

Dagster's code_version belongs to a whole asset, not to one partition; the variant's hash enters
the graph here instead, so editing one variant makes only that variant's teacher partitions (and
what was trained on them) stale."""

import dagster as dg

from rr_assets.partitions import prompt_variant_partitions
from rr_assets.resources import TeacherResource


@dg.asset(partitions_def=prompt_variant_partitions, group_name="teacher", kinds={"jinja"})
def prompt_templates(context: dg.AssetExecutionContext, teacher: TeacherResource) -> dg.MaterializeResult:
    """Templates per reasoning kind and meta.yaml of one prompt variant."""
    variant = teacher.variant(context.partition_key)
    return dg.MaterializeResult(
        metadata={"prompt_hash": variant.content_hash, "kinds": dg.MetadataValue.json(sorted(variant.templates)),
                  "labels": dg.MetadataValue.json(list(variant.labels)), "api": variant.api,
                  "folder": str(variant.folder)},
        data_version=dg.DataVersion(variant.content_hash),
    )
