"""The prompt variants' files, observed: a variant's data version is the hash of its folder.

Dagster's code_version belongs to a whole asset, not to one partition; the variant's hash enters
the graph here instead, so editing one variant makes only that variant's teacher partitions (and
what was trained on them) stale."""

import dagster as dg

from rr_assets.core.prompts import list_variants
from rr_assets.partitions import prompt_variant_partitions
from rr_assets.resources import TeacherService


@dg.observable_source_asset(partitions_def=prompt_variant_partitions, group_name="teacher")
def prompt_templates(teacher: dg.ResourceParam[TeacherService]) -> dg.DataVersionsByPartition:
    """Templates per reasoning kind and meta.yaml of each prompt variant folder (checked on load:
    a broken template fails here, before any teacher call)."""
    return dg.DataVersionsByPartition({name: dg.DataVersion(teacher.variant(name).content_hash)
                                       for name in list_variants(teacher.prompts_dir)})
